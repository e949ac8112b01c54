"""What happens after a commit: every cache tier, every replica and every subscriber learn it.

The writer commits a change, then hands the token's new state to
:meth:`Propagation.apply`, which, in this order:

1. stores it in this replica's first-level cache (detaching lookups in
   flight for the token, which may have read the old state);
2. publishes it to the other replicas' first levels
   (:mod:`amplify_auth_server.invalidation`) and returns their
   confirmation for the command's caller to await: a slow replica must not
   slow the writer;
3. writes it to Redis and appends its event to the stream subscribers read,
   in one script (:class:`~amplify_auth_server.cache.RedisCache.announce`);
   or, embedded, appends the event to the in-process feed.

Step 2 comes before step 3: a subscriber told of the change may validate at
once through another replica, which must already hold the new state
(``PUBLISH`` has reached every listener once it returns).

When Redis refuses step 3, the old state is unlinked and the token becomes
*suspect*: answered from the database only, on this replica now and on
every replica once the outbox replay finds its row
(:mod:`amplify_auth_server.outbox`), which also appends the missed event.
This class is the only one that changes the suspects set; the read path
(:class:`~amplify_auth_server.cache.TokenCache`) only looks at it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from amplify_auth_server.cache import LocalCache, RedisCache, TokenState
from amplify_auth_server.events import Change, MemoryEventFeed

logger = logging.getLogger("amplify_auth_server.propagation")


class Replicas(Protocol):
    """The other replicas' first levels: an
    :class:`~amplify_auth_server.invalidation.InvalidationBus`."""

    async def publish(self, key: str, state: TokenState) -> Awaitable[None]:
        """Hand ``state`` to every replica; returns the wait for their confirmations."""
        ...

    async def publish_many(self, changes: Sequence[tuple[str, TokenState]]) -> Awaitable[None]:
        """The same for several states, in one message and one confirmation."""
        ...


@dataclass(frozen=True, slots=True)
class Applied:
    """What :meth:`Propagation.apply` did: whether Redis took the change (always, without
    Redis), and the other replicas' confirmation, for the command's caller to await."""

    stored: bool
    confirmation: Awaitable[None] | None = None


class Propagation:
    """The owner of the after-commit path (see the module's docstring).

    ``shared`` and ``bus`` come together, with Redis; ``feed`` is the
    embedded default's event log, without it.
    """

    def __init__(
        self,
        local: LocalCache,
        *,
        suspects: set[str] | None = None,
        shared: RedisCache | None = None,
        bus: Replicas | None = None,
        feed: MemoryEventFeed | None = None,
    ) -> None:
        self._local = local
        self.suspects: set[str] = set() if suspects is None else suspects
        self._shared = shared
        self._bus = bus
        self._feed = feed

    @property
    def durable(self) -> bool:
        """Whether changes go through the outbox (only with a shared tier to replay into)."""
        return self._shared is not None

    async def apply(self, key: str, state: TokenState, change: Change) -> Applied:
        """Make a committed change visible in every tier and replica, and announce it."""
        (applied,) = await self.apply_many([(key, state, change)])
        return applied

    async def apply_many(self, changes: Sequence[tuple[str, TokenState, Change]]) -> list[Applied]:
        """The same for a batch's changes, in one round: one message to the other
        replicas, one pipeline to Redis. A token changed twice in the batch is
        shown in order, so its last state wins everywhere."""
        for key, state, _ in changes:
            self._local.changed(key, state)
        confirmation = None
        if self._bus is not None:
            confirmation = await self._bus.publish_many([(key, state) for key, state, _ in changes])
        if self._shared is None:
            if self._feed is not None:
                for key, state, change in changes:
                    self._feed.append(change, key, state.version)
            return [Applied(True, confirmation) for _ in changes]
        stored = await self._shared.announce_many(changes)
        for (key, state, _), took in zip(changes, stored, strict=True):
            if not took:
                # At least the old state must go (a full Redis still unlinks);
                # the event waits in the outbox for the replay.
                await self._shared.unlink(key)
                self.suspect(key)
                logger.warning(
                    "redis did not take a change to token %s; it is answered from the "
                    "database, and announced to subscribers, once the outbox replays it",
                    state.token_id,
                )
        # One confirmation for the batch: awaited by the first caller that gets it.
        return [Applied(took, confirmation) for took in stored]

    async def forget(self, key: str, change: Change, version: int) -> None:
        """A change whose outcome is unknown (the commit failed midway): drop ``key``.

        ``version`` is the one the row has if the change committed. With
        Redis, the outbox row written in the change's transaction announces
        it if it committed; embedded, there is no outbox, so subscribers are
        told now (an eviction too many, if it did not commit, costs one
        request).
        """
        self._local.evict(key)
        if self._shared is not None:
            if not await self._shared.unlink(key):
                self.suspect(key)
        elif self._feed is not None:
            self._feed.append(change, key, version)

    def suspect(self, key: str) -> None:
        """Redis may hold an older state of ``key`` than the database: until it is
        known to hold the new one, answer ``key`` from the database only."""
        self.suspects.add(key)
        self._local.evict(key)

    def reconcile(self, due: Collection[str], pending: Collection[str]) -> None:
        """Match the suspects to the outbox: its ``due`` rows are suspect here too
        (another replica's changes, perhaps), and a suspect no longer ``pending``
        was replayed by someone."""
        for key in set(due) - self.suspects:
            self.suspect(key)
        for key in self.suspects - set(pending):
            self.suspects.discard(key)

    async def replay(self, key: str, state: TokenState, change: Change) -> bool:
        """Step 3 again, for a change Redis did not take; whether it took it now.

        The other replicas are handed the state without waiting for their
        confirmations: they answer a suspect from the database until their
        next poll finds the outbox row gone, so none depends on hearing this.
        """
        assert self._shared is not None, "the outbox exists only with redis"
        if not await self._shared.announce(key, state, change):
            return False
        if self._bus is not None:
            await self._bus.publish(key, state)
        self._local.changed(key, state)
        return True

    def settled(self, key: str) -> None:
        """Redis holds ``key``'s latest state and the outbox no longer names it."""
        self.suspects.discard(key)
