"""Changes that Redis has not taken yet, replayed by any replica.

A revoke or extend commits, in the same transaction, an outbox row naming
the token's hash and new version; once Redis holds that state, the row is
deleted. If Redis refuses the write (down, full, paused, partitioned from
this replica only) or the replica dies right after the commit, the row
stays, and every replica's :class:`OutboxReplay` finds it within
``OUTBOX_GRACE`` + ``OUTBOX_POLL_INTERVAL``:

* it marks the token *suspect*, so that this replica answers it from the
  database rather than from a cache that may hold the old state;
* it tries to write the token's current state to Redis (a versioned
  compare-and-set, so replicas racing to replay cannot go backwards) and
  to append its event to the stream that event subscribers read, tells the
  other replicas, and deletes the row.

So a change reaches every replica's answers within one poll interval even
when Redis cannot take it, and the replay survives the replica that made
the change. Without Redis there is no shared tier and no outbox.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Final

from amplify_auth_server.background import Background
from amplify_auth_server.cache import UNKNOWN, TokenState
from amplify_auth_server.errors import DatabaseUnavailable
from amplify_auth_server.events import Change
from amplify_auth_server.models import utcnow
from amplify_auth_server.propagation import Propagation
from amplify_auth_server.store import TokenStore

logger = logging.getLogger("amplify_auth_server.outbox")

OUTBOX_POLL_INTERVAL: Final = 1.0
#: Rows younger than this are left to the writer that is applying them.
OUTBOX_GRACE: Final = 0.25


class OutboxReplay(Background):
    """Every replica's poller of the outbox: suspects and replays, through the propagation."""

    task_name = "amplify-auth-outbox"

    def __init__(
        self,
        store: TokenStore,
        propagation: Propagation,
        *,
        interval: float = OUTBOX_POLL_INTERVAL,
    ) -> None:
        self.store = store
        self.propagation = propagation
        self.interval = interval

    async def run(self) -> None:
        while True:
            try:
                await self.replay_once()
            except DatabaseUnavailable:
                pass  # the suspects stay as they were; the next poll retries
            except Exception:
                logger.exception("outbox replay failed; retrying")
            await asyncio.sleep(self.interval)

    async def replay_once(self) -> None:
        pending = await self.store.outbox_pending()
        # A row younger than the grace is most likely a change its writer is
        # still applying: replaying it too would only duplicate its event and
        # answer the token from the database for a second, for nothing.
        settled = utcnow() - timedelta(seconds=OUTBOX_GRACE)
        due = {key for key, changed_at in pending.items() if changed_at <= settled}
        self.propagation.reconcile(due, pending.keys())
        for key in due:
            await self._replay(key)

    async def _replay(self, key: str) -> None:
        record = await self.store.get_by_hash(key)
        state = UNKNOWN if record is None else TokenState.from_record(record)
        # Whatever the change was, this is its final state: a revoke, or an
        # extend not revoked since.
        change: Change = "extended" if state.known and not state.revoked else "revoked"
        if not await self.propagation.replay(key, state, change):
            return
        await self.store.outbox_done(key, state.version)
        self.propagation.settled(key)
        logger.info("replayed a change to token %s into redis", state.token_id)
