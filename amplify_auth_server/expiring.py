"""The periodic scan that sends ``token.expiring``, ``WEBHOOK_EXPIRING_DAYS`` ahead.

Every replica scans every ``WEBHOOK_SCAN_INTERVAL`` for tokens owed a warning
(:meth:`TokenStore.expiring_conditions`, the one place those conditions are
written) and hands their ids to the writer as one
:class:`~amplify_auth_server.commands.NotifyExpiring`, which marks each token
warned of its expiry, audits it and queues its webhook in one transaction.
The command re-checks the conditions in its update, so replicas scanning at
once warn each token once; an extended token is warned again before its new
expiry.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Final

from amplify_auth_server.background import Periodic
from amplify_auth_server.commands import CommandQueue, NotifyExpiring
from amplify_auth_server.models import utcnow
from amplify_auth_server.store import TokenStore

logger = logging.getLogger("amplify_auth_server.webhooks")

#: Tokens one command warns at most (a scan continues until none is left).
SCAN_BATCH: Final = 500


class ExpiringScan(Periodic):
    """One replica's scan for tokens entering their warning window."""

    what = "the expiring-token scan"
    logger = logger
    task_name = "amplify-auth-expiring"

    def __init__(
        self, store: TokenStore, queue: CommandQueue, *, days: int, interval: float
    ) -> None:
        self.store = store
        self.queue = queue
        self.horizon = timedelta(days=days)
        self.interval = interval

    async def once(self) -> object:
        return await self.scan_once()

    async def scan_once(self) -> int:
        """Warn every token owed it now: how many were warned."""
        warned = 0
        while True:
            now = utcnow()
            ids = await self.store.expiring_ids(now, now + self.horizon, SCAN_BATCH)
            if not ids:
                return warned
            done = await self.queue.submit(NotifyExpiring(tuple(ids), self.horizon))
            warned += len(done)
            if len(ids) < SCAN_BATCH or not done:
                return warned
