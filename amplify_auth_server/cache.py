"""What the server remembers about tokens, in two tiers.

* :class:`LocalCache`, in-process. Without Redis it is the only cache and
  holds entries for ``TOKEN_CACHE_TTL``. With Redis it is a short-lived
  first level (``LOCAL_CACHE_TTL``) that saves a Redis round trip per
  validation, used only while this replica hears the other replicas'
  changes (see :mod:`amplify_auth_server.invalidation`).
* :class:`RedisCache`, shared by every replica.

Three rules keep a slow reader from undoing a change:

1. Every state carries the token row's ``version``; a tier never replaces a
   state with an older one (the Redis write is a compare-and-set in Lua).
   The local cache keeps an expired entry's version as a watermark, and a
   state read from Redis that is older than it is not believed.
2. Every change bumps the local cache's generation; a lookup stores what it
   read only if no change happened since it began (it still answers its
   own callers, who asked before the change).
3. A change that Redis did not take makes its token *suspect* on this
   replica at once, and on every replica within ``OUTBOX_POLL_INTERVAL``
   (see :mod:`amplify_auth_server.outbox`): suspect tokens skip both caches
   and are answered from the database until Redis holds their new state.

Keys are SHA-256 hex digests; values hold ids, names, scopes and
timestamps. Nothing here ever sees a raw token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final, Protocol

import orjson
import redis.asyncio as redis
from cachetools import LRUCache
from redis.exceptions import RedisError

from amplify_auth_server.events import EVENT_BACKLOG, Change, MemoryEventFeed
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.models import TokenRecord

logger = logging.getLogger("amplify_auth_server.cache")

# After a Redis failure, the shared tier is skipped for this long instead of
# paying a connection error (or a timeout) on every request.
REDIS_RETRY_INTERVAL: Final = 1.0


class TokenState:
    """What a cache knows about one token hash: enough to answer a validation.

    ``version`` 0 means the token is unknown to the database. ``rendered`` is
    a memo for the validation route: the response body for "valid", built
    once per state rather than once per request.
    """

    __slots__ = (
        "deadline",
        "expires_at",
        "name",
        "rendered",
        "revoked",
        "scopes",
        "token_id",
        "version",
    )

    def __init__(
        self,
        *,
        version: int,
        token_id: str | None = None,
        name: str | None = None,
        scopes: tuple[str, ...] = (),
        expires_at: datetime | None = None,
        revoked: bool = False,
    ) -> None:
        self.version = version
        self.token_id = token_id
        self.name = name
        self.scopes = scopes
        self.expires_at = expires_at
        # The expiry as a timestamp: compared on every validation.
        self.deadline = None if expires_at is None else expires_at.timestamp()
        self.revoked = revoked
        self.rendered: bytes | None = None

    @classmethod
    def from_record(cls, record: TokenRecord) -> TokenState:
        return cls(
            version=record.version,
            token_id=record.id,
            name=record.name,
            scopes=record.scopes,
            expires_at=record.expires_at,
            revoked=record.revoked_at is not None,
        )

    @property
    def known(self) -> bool:
        return self.version > 0

    def dumps(self) -> bytes:
        return orjson.dumps(
            {
                "v": self.version,
                "id": self.token_id,
                "n": self.name,
                "s": self.scopes,
                "e": None if self.expires_at is None else self.expires_at.isoformat(),
                "r": self.revoked,
            }
        )

    @classmethod
    def loads(cls, data: bytes | str) -> TokenState:
        raw: dict[str, Any] = orjson.loads(data)
        return cls(
            version=int(raw["v"]),
            token_id=raw["id"],
            name=raw["n"],
            scopes=tuple(raw["s"]),
            expires_at=None if raw["e"] is None else datetime.fromisoformat(raw["e"]),
            revoked=bool(raw["r"]),
        )

    def __repr__(self) -> str:
        return (
            f"TokenState(version={self.version}, token_id={self.token_id!r}, "
            f"revoked={self.revoked}, expires_at={self.expires_at})"
        )


UNKNOWN: Final = TokenState(version=0)


class LocalCache:
    """In-process LRUs of token states with per-entry deadlines.

    Unknown tokens live in an LRU of their own, so that a flood of garbage
    cannot push the known tokens out. Not thread-safe, and it need not be:
    the server touches it only from the event loop.
    """

    def __init__(self, *, maxsize: int, ttl: float, negative_ttl: float) -> None:
        size = max(maxsize, 1)
        self._known: LRUCache[str, tuple[TokenState, float]] = LRUCache(maxsize=size)
        self._unknown: LRUCache[str, float] = LRUCache(maxsize=size)
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.enabled = maxsize > 0 and ttl > 0
        #: Bumped by every change and every clear; see rule 2 of the module.
        self.generation = 0

    def get(self, key: str) -> TokenState | None:
        if not self.enabled:
            return None
        entry = self._known.get(key)
        now = time.monotonic()
        if entry is not None:
            # An expired entry stays, as a version watermark (rule 1).
            return entry[0] if entry[1] > now else None
        fresh_until = self._unknown.get(key)
        return UNKNOWN if fresh_until is not None and fresh_until > now else None

    def put(self, key: str, state: TokenState, generation: int | None = None) -> TokenState:
        """Remember ``state`` unless a newer one is held; return the newest known.

        With ``generation`` (a lookup's), store only if nothing changed since
        the lookup began.
        """
        if not self.enabled:
            return state
        held = self._known.get(key)
        if held is not None and held[0].version > state.version:
            return held[0]
        if generation is not None and generation != self.generation:
            return state
        now = time.monotonic()
        if state.known:
            self._known[key] = (state, now + self.ttl)
            self._unknown.pop(key, None)
        elif self.negative_ttl > 0:
            self._unknown[key] = now + self.negative_ttl
        return state

    def changed(self, key: str, state: TokenState) -> None:
        """A committed change: it replaces what is held, and outdates running lookups."""
        self.generation += 1
        self.put(key, state)

    def evict(self, key: str) -> None:
        self.generation += 1
        self._known.pop(key, None)
        self._unknown.pop(key, None)

    def clear(self) -> None:
        self.generation += 1
        self._known.clear()
        self._unknown.clear()

    def __len__(self) -> int:
        return len(self._known) + len(self._unknown)


# KEYS[1] = entry key; ARGV = version, payload, ttl in ms. The state is written
# only if no newer version is held (rule 1).
# With KEYS[2], the event stream (a committed change, see ``announce``): also
# ARGV = change, token hash, stream length, and the event is appended in the
# same script, whether or not the state was newer: a duplicate costs a
# subscriber one eviction, a missing event would leave a revoked token in its
# cache. The fields are the ones ``events._decode`` reads.
_PUT_IF_NEWER: Final = """
local current = redis.call('GET', KEYS[1])
local newer = false
if current then
  local held = tonumber(string.match(current, '^(%d+)|'))
  newer = held and held > tonumber(ARGV[1])
end
if not newer then
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
end
if KEYS[2] then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*',
             'change', ARGV[4], 'hash', ARGV[5], 'version', ARGV[1])
end
return newer and 0 or 1
"""


class RedisCache:
    """The shared tier: one key per token hash, ``version|json`` values.

    Every operation is best effort and says whether it worked; after a
    failure Redis is left alone for ``REDIS_RETRY_INTERVAL`` so that a hung
    Redis costs one timeout a second, not one per request.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        ttl: float,
        negative_ttl: float,
        metrics: Metrics,
        backlog: int = EVENT_BACKLOG,
    ) -> None:
        self.client = client
        self.prefix = f"{prefix}:tok:"
        #: Where committed changes are announced (see :mod:`amplify_auth_server.events`).
        self.stream = f"{prefix}:events"
        self.backlog = backlog
        self.ttl_ms = int(ttl * 1000)
        self.negative_ttl_ms = int(negative_ttl * 1000)
        self._put_if_newer = client.register_script(_PUT_IF_NEWER)
        self._down_until = 0.0
        self._metrics = metrics

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    def _failed(self, exc: BaseException) -> None:
        if not self.down:
            logger.warning("redis failed (%s); using the database until it answers", exc)
        self._down_until = time.monotonic() + REDIS_RETRY_INTERVAL
        self._metrics.redis_error.inc()

    async def get(self, key: str) -> TokenState | None:
        """The shared state of ``key``, or None on a miss or while Redis fails."""
        if self.down:
            self._metrics.redis_skipped.inc()
            return None
        try:
            raw = await self.client.get(self.prefix + key)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        if raw is None:
            self._metrics.redis_miss.inc()
            return None
        # The client is built without decode_responses: values are bytes.
        assert isinstance(raw, bytes)
        try:
            state = TokenState.loads(raw.partition(b"|")[2])
        except (ValueError, KeyError, TypeError):
            # Another version's format, mid-upgrade: a miss, not a 500.
            self._metrics.redis_miss.inc()
            return None
        self._metrics.redis_hit.inc()
        return state

    async def put(self, key: str, state: TokenState) -> bool:
        """Store ``state`` unless Redis holds a newer one; whether Redis took it."""
        ttl_ms = self.ttl_ms if state.known else self.negative_ttl_ms
        if ttl_ms <= 0:
            return True
        return await self._write([self.prefix + key], [state.version, state.dumps(), ttl_ms])

    async def announce(self, key: str, state: TokenState, change: Change) -> bool:
        """Store a committed change's ``state`` and append its event, in one script.

        Whether Redis took both: a change whose event is not in the stream
        must stay in the outbox until it is, or subscribers would never hear it.
        """
        ttl_ms = self.ttl_ms if state.known else self.negative_ttl_ms
        # A zero TTL (caching off) still needs a valid PX: 1 ms.
        args = [state.version, state.dumps(), max(ttl_ms, 1), change, key, self.backlog]
        return await self._write([self.prefix + key, self.stream], args)

    async def _write(self, keys: list[str], args: list[Any]) -> bool:
        if self.down:
            self._metrics.redis_skipped.inc()
            return False
        try:
            await self._put_if_newer(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return False
        return True

    async def unlink(self, key: str) -> bool:
        """Drop ``key``: allowed even where a write is refused (a full Redis)."""
        try:
            await self.client.unlink(self.prefix + key)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return False
        return True

    async def ping(self) -> bool:
        try:
            await self.client.ping()
        except (RedisError, OSError):
            return False
        return True


class Publisher(Protocol):
    """Fan-out of committed changes to other replicas (see ``invalidation``)."""

    @property
    def live(self) -> bool: ...

    async def publish(self, key: str, state: TokenState) -> Awaitable[None]: ...


class TokenCache:
    """The tiers as the validation path and the writer see them."""

    def __init__(
        self,
        local: LocalCache,
        shared: RedisCache | None = None,
        publisher: Publisher | None = None,
        feed: MemoryEventFeed | None = None,
    ) -> None:
        self.local = local
        self.shared = shared
        self.publisher = publisher
        #: Without Redis: where committed changes are announced to subscribers.
        self.feed = feed
        #: Hashes whose new state Redis may not hold: answered from the database.
        self.suspects: set[str] = set()
        self._listeners: list[Callable[[str | None], None]] = []

    def on_change(self, listener: Callable[[str | None], None]) -> None:
        """Call ``listener(key)`` on every change to ``key`` (None: to everything)."""
        self._listeners.append(listener)

    def _notify(self, key: str | None) -> None:
        for listener in self._listeners:
            listener(key)

    @property
    def generation(self) -> int:
        return self.local.generation

    def get_local(self, key: str) -> TokenState | None:
        # With replicas, a local entry is only as good as our hearing of
        # their changes: while deaf, go to Redis every time.
        if self.publisher is not None and not self.publisher.live:
            return None
        if self.suspects and key in self.suspects:
            return None
        return self.local.get(key)

    async def get_shared(self, key: str, generation: int) -> TokenState | None:
        if self.shared is None or key in self.suspects:
            return None
        state = await self.shared.get(key)
        if state is None:
            return None
        return self.local.put(key, state, generation)

    async def fill(self, key: str, state: TokenState, generation: int) -> TokenState:
        """Cache what the database said about ``key``; the newest state known."""
        newest = self.local.put(key, state, generation)
        if self.shared is not None and key not in self.suspects and newest is state:
            await self.shared.put(key, state)
        return newest

    def changed(self, key: str, state: TokenState) -> None:
        """A committed change, made here or heard from another replica."""
        self.local.changed(key, state)
        self._notify(key)

    def suspect(self, key: str) -> None:
        """Redis may hold an older state of ``key`` than the database: until it is
        known to hold the new one, answer ``key`` from the database only."""
        self.suspects.add(key)
        self.local.evict(key)
        self._notify(key)

    def cleared(self) -> None:
        """Everything may have changed (we were deaf to the other replicas)."""
        self.local.clear()
        self._notify(None)

    async def apply(
        self, key: str, state: TokenState, change: Change
    ) -> tuple[bool, Awaitable[None] | None]:
        """Make a committed change visible in every tier and replica, and announce it.

        Returns whether Redis took it (state and event), and the replicas'
        confirmation to await (outside the writer: a slow replica must not
        slow every write).
        """
        self.changed(key, state)
        confirmation = None
        if self.publisher is not None:
            # Before the event: a subscriber told of this change may validate
            # at once on another replica, which must already have been handed
            # the new state (PUBLISH has reached every listener once it
            # returns), or its local cache answers the old state and the
            # subscriber caches that for its whole TTL.
            confirmation = await self.publisher.publish(key, state)
        stored = True
        if self.shared is not None:
            stored = await self.shared.announce(key, state, change)
            if not stored:
                # At least the old state must go (a full Redis still unlinks);
                # the event waits in the outbox for the replay.
                await self.shared.unlink(key)
                self.suspect(key)
                logger.warning(
                    "redis did not take a change to token %s; it is answered from the "
                    "database, and announced to subscribers, once the outbox replays it",
                    state.token_id,
                )
        elif self.feed is not None:
            self.feed.append(change, key, state.version)
        return stored, confirmation

    def evict_local(self, key: str) -> None:
        """Another replica announced a change to ``key``: drop this replica's entry.

        The announcement can reach this replica's event subscribers before
        the invalidation channel brings the new state; a subscriber that
        validates again at once must not get the old state from here.
        """
        self.local.evict(key)
        self._notify(key)

    async def forget(self, key: str, change: Change, version: int) -> None:
        """A change whose outcome is unknown (the commit failed midway): drop ``key``.

        ``version`` is the one the row has if the change committed. With Redis, the
        outbox row written in the change's transaction announces it if it
        committed; embedded, there is no outbox, so subscribers are told now
        (an eviction too many, if it did not commit, costs one request).
        """
        self.local.evict(key)
        self._notify(key)
        if self.shared is not None and not await self.shared.unlink(key):
            self.suspect(key)
        elif self.shared is None and self.feed is not None:
            self.feed.append(change, key, version)
