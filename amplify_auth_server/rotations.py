"""Ending a rotation's grace early, once the old token has gone quiet.

A rotation with ``finish_when_idle_seconds`` M keeps the old token valid
until its deadline, unless it goes unused for M seconds first (counted from
its last use, or from the rotation if that came later): then it is revoked,
by the system, and audited as ``rotation_finished``. "Unused"
counts every validation, the server's and the SDKs' cache hits alike
(:mod:`amplify_auth_server.usage`), which is what no anchor can tell: most
validations never reach a server.

Every replica scans every ``ROTATION_IDLE_SCAN_SECONDS`` the rotated tokens
still in such a grace (a partial index holds just those rows), and hands
each one idle by its ``last_used_at`` to the writer as a
:class:`~amplify_auth_server.commands.FinishRotation`, which decides again
under the row lock. So a token is revoked at most one scan interval after
its ``last_used_at`` shows it idle; that column lags a use by the flush
interval (``USAGE_FLUSH_SECONDS``) through a server, and by an SDK's report
interval more through its cache: hence the floor on M
(:data:`~amplify_auth_client.contract.MIN_FINISH_WHEN_IDLE_SECONDS`).
"""

from __future__ import annotations

import logging
from typing import Final

from amplify_auth_server.background import Periodic
from amplify_auth_server.commands import CommandQueue, FinishRotation
from amplify_auth_server.models import utcnow
from amplify_auth_server.store import TokenStore

logger = logging.getLogger("amplify_auth_server.rotations")

#: Rotated tokens one read of the scan takes (it reads on until none is left).
SCAN_PAGE: Final = 500


class IdleRotations(Periodic):
    """One replica's scan for rotated tokens whose grace ends now."""

    what = "the idle-rotation scan"
    logger = logger
    task_name = "amplify-auth-idle-rotations"

    def __init__(self, store: TokenStore, queue: CommandQueue, *, interval: float) -> None:
        self.store = store
        self.queue = queue
        self.interval = interval

    async def once(self) -> object:
        return await self.scan_once()

    async def scan_once(self) -> tuple[str, ...]:
        """Finish every rotation idle now: the ids of the old tokens revoked."""
        finished: list[str] = []
        after: str | None = None
        while True:
            now = utcnow()
            page = await self.store.finishing(now, after=after, limit=SCAN_PAGE)
            for record, rotated_at in page:
                if record.idle_in_grace(now, rotated_at):
                    done = await self.queue.submit(FinishRotation(record.id, rotated_at))
                    if done.revoked_at is not None and done.revoked_at >= now:
                        finished.append(record.id)
                        logger.info(
                            "rotation of %s finished: unused for %ss",
                            record.id,
                            record.finish_when_idle_seconds,
                        )
            if len(page) < SCAN_PAGE:
                return tuple(finished)
            after = page[-1][0].id
