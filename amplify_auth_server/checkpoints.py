"""The embedded database's WAL checkpoints: copied beside the writer, not in its commits.

In WAL mode a commit appends the pages it changed to the write-ahead log,
and SQLite by default copies the log back into the database file (a
checkpoint, with its two fsyncs) inside the commit that takes the log past
1,000 pages: inside the single writer's commit, then, while every caller
of that batch and of those queued behind it waits. A create touches a page
of each of a dozen indexes at random, about 16 KiB of log, so under a
burst that was every few batches.

The served process turns it off on the writer's connections
(:func:`~amplify_auth_server.database.create_engine` with
``autocheckpoint=False``) and runs :class:`WalCheckpoints` instead:

- every :data:`CHECKPOINT_INTERVAL` seconds, a ``PASSIVE`` checkpoint from
  a connection of the read pool, in that connection's own thread. SQLite
  lets it copy while the writer goes on appending, and it waits for no
  one. This is where nearly all the copying happens.
- A passive checkpoint that runs beside a busy writer never lets the log
  start over, though: SQLite rewinds it only when a write begins with every
  page of it already copied, and under a burst the writer has always
  written more by then. So once the log holds :data:`RESTART_PAGES`, the
  writer itself, between two batches (:meth:`WalCheckpoints.between_batches`),
  copies the few pages the last round left; its next write then starts the
  log over, as after SQLite's own checkpoint. It waits for no reader: one
  still in the log (a backup, a ``sqlite3`` shell) only keeps it from
  starting over, until a later batch.

The log so stays within some tens of megabytes, and the writer copies a
short tail every few seconds of a burst instead of 1,000 pages every few
batches. Durability does not change: a committed transaction is in the
log, and a process killed before a checkpoint finds it there when it opens
the database again. Other processes (the CLI's one-shot commands, the
migrations) keep SQLite's own checkpoints.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Final, NamedTuple

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from amplify_auth_server.background import Periodic

logger = logging.getLogger("amplify_auth_server.checkpoints")

#: Seconds between two rounds beside the writer: at 2,000 creates a second,
#: about 800 pages of log (3 MiB) to copy at each.
CHECKPOINT_INTERVAL: Final = 0.1
#: Pages of log (4 KiB each) past which the writer makes the log start over.
RESTART_PAGES: Final = 4096

_PASSIVE: Final = text("PRAGMA wal_checkpoint(PASSIVE)")


class Checkpoint(NamedTuple):
    """What ``PRAGMA wal_checkpoint`` answers: whether a writer or reader kept it from
    finishing, the pages in the log, and how many of them are now in the database."""

    busy: bool
    log_pages: int
    checkpointed_pages: int


class WalCheckpoints(Periodic):
    """``PASSIVE`` checkpoints of an SQLite database every ``interval`` seconds from
    ``reads``, and one from ``writes`` between the writer's batches once the log holds
    ``restart_pages``."""

    task_name = "amplify-auth-wal-checkpoints"
    what: ClassVar[str] = "the WAL checkpoint"
    logger: ClassVar[logging.Logger] = logger

    def __init__(
        self,
        reads: AsyncEngine,
        writes: AsyncEngine,
        *,
        interval: float = CHECKPOINT_INTERVAL,
        restart_pages: int = RESTART_PAGES,
    ) -> None:
        self._reads = reads
        self._writes = writes
        self.interval = interval
        self._restart_pages = restart_pages
        #: The log's length at the last checkpoint.
        self._log_pages = 0
        #: Whether the writer committed since the last round: an idle server
        #: checkpoints nothing.
        self._written = False
        #: Whether the last checkpoint failed (logged once until one works).
        self._failing = False

    async def once(self) -> Checkpoint | None:
        """One round beside the writer; None if it has written nothing since the last
        (or the checkpoint failed)."""
        if not self._written:
            return None
        self._written = False
        return await self._checkpoint(self._reads)

    async def between_batches(self) -> Checkpoint | None:
        """The writer's part, after each batch: when the log is long, copy what is left
        of it, so that the next write starts it over; None when it is short."""
        self._written = True
        if self._log_pages < self._restart_pages:
            return None
        return await self._checkpoint(self._writes)

    async def _checkpoint(self, engine: AsyncEngine) -> Checkpoint | None:
        """A ``PASSIVE`` checkpoint from ``engine``; None if the database failed it.

        A failure is logged once, not at every round (ten a second) or batch,
        and the recovery once: a missed checkpoint only leaves the log longer.
        """
        try:
            async with engine.connect() as connection:
                row = (await connection.execute(_PASSIVE)).one()
        except (SQLAlchemyError, OSError) as exc:
            if not self._failing:
                logger.warning("the WAL checkpoint failed (%s); retrying", type(exc).__name__)
            self._failing = True
            return None
        if self._failing:
            logger.info("the WAL checkpoint works again")
        self._failing = False
        done = Checkpoint(bool(row[0]), row[1], row[2])
        self._log_pages = done.log_pages
        return done
