"""The read tiers: what the server remembers about tokens, in two levels.

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

This module only reads, and keeps each tier's own rules; what a committed
change does to the tiers, the other replicas and the event stream belongs
to :mod:`amplify_auth_server.propagation`, which is the only writer of
the suspects set.

Keys are SHA-256 hex digests; values hold ids, names, scopes and
timestamps. Nothing here ever sees a raw token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Literal, Protocol

import orjson
import redis.asyncio as redis
from cachetools import LRUCache
from redis.exceptions import RedisError

from amplify_auth_server.events import EVENT_BACKLOG, Change
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.models import TokenRecord

logger = logging.getLogger("amplify_auth_server.cache")

# After a Redis failure, the shared tier is skipped for this long instead of
# paying a connection error (or a timeout) on every request.
REDIS_RETRY_INTERVAL: Final = 1.0
#: How long a validation waits for Redis before it asks the database instead.
DEFAULT_READ_BUDGET: Final = 0.05


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
        "owner",
        "rendered",
        "replaced_by",
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
        owner: str | None = None,
        replaced_by: str | None = None,
    ) -> None:
        self.version = version
        self.token_id = token_id
        self.name = name
        self.scopes = scopes
        self.expires_at = expires_at
        # The expiry as a timestamp: compared on every validation.
        self.deadline = None if expires_at is None else expires_at.timestamp()
        self.revoked = revoked
        self.owner = owner
        # A rotated token's successor: said in its answers while in grace.
        self.replaced_by = replaced_by
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
            owner=record.owner,
            replaced_by=record.replaced_by,
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
                "o": self.owner,
                "rb": self.replaced_by,
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
            # Absent in an entry an older replica wrote: no owner known, and
            # the entry is replaced at the token's next change.
            owner=raw.get("o"),
            # Absent likewise in an entry older than rotation: not rotated.
            replaced_by=raw.get("rb"),
        )

    def __repr__(self) -> str:
        return (
            f"TokenState(version={self.version}, token_id={self.token_id!r}, "
            f"revoked={self.revoked}, expires_at={self.expires_at})"
        )


UNKNOWN: Final = TokenState(version=0)


def _digest(key: str) -> bytes:
    """A hash's 32 bytes, for :class:`Unknowns`; any other key (none the server makes)
    as its own bytes, so that nothing here can raise."""
    try:
        return bytes.fromhex(key)
    except ValueError:
        return key.encode("utf-8", "surrogatepass")


class Unknowns:
    """Hashes the database does not know, each remembered at most ``ttl`` seconds.

    What a flood of made-up tokens fills, so it is built for memory and for
    expiring on time: two sets of 32-byte digests, the older dropped whole
    every ``ttl / 2`` seconds. A hash is remembered while it is in either, so
    for between ``ttl / 2`` and ``ttl`` after it was last put; nothing stays
    past ``ttl``, whether or not anything else is put meanwhile. An entry
    costs its digest and a set slot, about 100 bytes (an LRU keyed by hex
    with a deadline each cost 270; see benchmarks/memory.py). Past
    ``maxsize``, the older set goes early.
    """

    __slots__ = ("_current", "_half", "_maxsize", "_previous", "_rotate_at")

    def __init__(self, *, maxsize: int, ttl: float) -> None:
        self._maxsize = maxsize
        self._half = ttl / 2
        self._current: set[bytes] = set()
        self._previous: set[bytes] = set()
        self._rotate_at = time.monotonic() + self._half

    def _tick(self, now: float) -> None:
        if now < self._rotate_at:
            return
        if now < self._rotate_at + self._half:
            self._previous, self._current = self._current, set()
            self._rotate_at += self._half
        else:  # nothing happened for a whole ttl: all of it is past
            self._previous, self._current = set(), set()
            self._rotate_at = now + self._half

    def __contains__(self, digest: bytes) -> bool:
        self._tick(time.monotonic())
        return digest in self._current or digest in self._previous

    def add(self, digest: bytes) -> None:
        self._tick(time.monotonic())
        if len(self._current) + len(self._previous) >= self._maxsize:
            # Full: the older set goes now (and the current one too, when it alone is full).
            self._previous = self._current if len(self._current) < self._maxsize else set()
            self._current = set()
        self._previous.discard(digest)
        self._current.add(digest)

    def discard(self, digest: bytes) -> None:
        self._current.discard(digest)
        self._previous.discard(digest)

    def clear(self) -> None:
        self._current.clear()
        self._previous.clear()

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)


class LocalCache:
    """In-process LRU of token states with per-entry deadlines, the unknown hashes, and
    the lookups in flight.

    Unknown tokens live apart (:class:`Unknowns`), so that a flood of garbage
    cannot push the known tokens out. Not thread-safe, and it need not be:
    the server touches it only from the event loop.

    :attr:`inflight` holds the database lookups under way, one per hash, for
    concurrent misses to share (see :mod:`amplify_auth_server.validation`).
    Every change to a key detaches its lookup: one that began before the
    change may have read the old state, so callers who arrive after it must
    not join it (those already waiting asked before the change, and keep
    its answer).
    """

    def __init__(self, *, maxsize: int, ttl: float, negative_ttl: float) -> None:
        size = max(maxsize, 1)
        self._known: LRUCache[str, tuple[TokenState, float]] = LRUCache(maxsize=size)
        self._unknown = Unknowns(maxsize=size, ttl=negative_ttl)
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.enabled = maxsize > 0 and ttl > 0
        #: Bumped by every change and every clear; see rule 2 of the module.
        self.generation = 0
        self.inflight: dict[str, asyncio.Task[TokenState]] = {}

    def get(self, key: str) -> TokenState | None:
        if not self.enabled:
            return None
        entry = self._known.get(key)
        now = time.monotonic()
        if entry is not None:
            # An expired entry stays, as a version watermark (rule 1).
            return entry[0] if entry[1] > now else None
        if self.negative_ttl > 0 and _digest(key) in self._unknown:
            return UNKNOWN
        return None

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
            self._unknown.discard(_digest(key))
        elif self.negative_ttl > 0:
            self._unknown.add(_digest(key))
        return state

    def changed(self, key: str, state: TokenState) -> None:
        """A committed change: it replaces what is held, and outdates running lookups."""
        self.generation += 1
        self.inflight.pop(key, None)
        self.put(key, state)

    def evict(self, key: str) -> None:
        """``key`` changed, to a state not known here: forget it."""
        self.generation += 1
        self.inflight.pop(key, None)
        self._known.pop(key, None)
        self._unknown.discard(_digest(key))

    def clear(self) -> None:
        """Anything may have changed: forget everything."""
        self.generation += 1
        self.inflight.clear()
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


class RedisBudget:
    """Whether the validation path should ask Redis now, and how long it may wait.

    Shared by every caller on that path (the shared cache tier, the failure
    throttle), so that what one learns of Redis the others act on at once.
    After a failure Redis is left alone for ``REDIS_RETRY_INTERVAL``, so that a
    hung Redis costs one timeout a second, not one per request; a call past
    ``read_budget`` is abandoned and Redis is left alone as long: a slow Redis
    (up, but answering late) costs one budget a second.
    """

    def __init__(self, *, read_budget: float = DEFAULT_READ_BUDGET, metrics: Metrics) -> None:
        self.read_budget = read_budget
        self._down_until = 0.0
        self._slow_until = 0.0
        self._metrics = metrics

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    @property
    def avoided(self) -> bool:
        """Whether Redis is best left alone for now (down, or slow)."""
        return self.down or time.monotonic() < self._slow_until

    def skip(self) -> bool:
        """:attr:`avoided`, counted as a cache lookup skipped: for the validation path's
        cache tier only, so that its metric counts lookups and nothing else."""
        if self.avoided:
            self._metrics.redis_skipped.inc()
            return True
        return False

    def slow(self) -> None:
        """A call was abandoned past the read budget."""
        if time.monotonic() >= self._slow_until:
            logger.warning(
                "redis answered a validation's call later than REDIS_READ_BUDGET (%.0f ms); "
                "validations use the database for %.0f s",
                self.read_budget * 1000,
                REDIS_RETRY_INTERVAL,
            )
        self._slow_until = time.monotonic() + REDIS_RETRY_INTERVAL
        self._metrics.redis_slow.inc()

    def failed(self, exc: BaseException) -> None:
        """A call failed: Redis is down, for now."""
        if not self.down:
            logger.warning("redis failed (%s); using the database until it answers", exc)
        self._down_until = time.monotonic() + REDIS_RETRY_INTERVAL
        self._metrics.redis_error.inc()


class RedisCache:
    """The shared tier: one key per token hash, ``version|json`` values.

    Every operation is best effort and says whether it worked; after a
    failure Redis is left alone for ``REDIS_RETRY_INTERVAL`` (see
    :class:`RedisBudget`, which ``budget`` is) so that a hung Redis costs one
    timeout a second, not one per request.

    The validation path's two calls (:meth:`get`, and :meth:`put` of what the
    database said) also have a latency budget, ``budget.read_budget``: a slow
    Redis (up, but answering late) would otherwise add its delay to every
    validation, once for the read and once for the write-back. Past the
    budget, the call is abandoned, the validation goes to the database, and
    the validation path leaves Redis alone for ``REDIS_RETRY_INTERVAL``: a
    slow Redis costs one budget a second. The writer's calls keep the
    client's socket timeout: a change must reach Redis, or the outbox.
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
        budget: RedisBudget | None = None,
    ) -> None:
        self.client = client
        self.budget = budget or RedisBudget(metrics=metrics)
        self.read_budget = self.budget.read_budget
        self.prefix = f"{prefix}:tok:"
        #: Where committed changes are announced (see :mod:`amplify_auth_server.events`).
        self.stream = f"{prefix}:events"
        self.backlog = backlog
        self.ttl_ms = int(ttl * 1000)
        self.negative_ttl_ms = int(negative_ttl * 1000)
        self._put_if_newer = client.register_script(_PUT_IF_NEWER)
        self._metrics = metrics

    @property
    def down(self) -> bool:
        return self.budget.down

    def _skip_reads(self) -> bool:
        return self.budget.skip()

    def _slow(self) -> None:
        self.budget.slow()

    def _failed(self, exc: BaseException) -> None:
        self.budget.failed(exc)

    async def get(self, key: str) -> TokenState | None:
        """The shared state of ``key``, or None on a miss, while Redis fails, or when it
        does not answer within the read budget."""
        if self._skip_reads():
            return None
        try:
            async with asyncio.timeout(self.read_budget):
                raw = await self.client.get(self.prefix + key)
        except TimeoutError:
            self._slow()
            return None
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
        """Store what the database said of ``key`` unless Redis holds a newer state;
        whether Redis took it (within the read budget: it is on a validation's path)."""
        ttl_ms = self.ttl_ms if state.known else self.negative_ttl_ms
        if ttl_ms <= 0:
            return True
        if self._skip_reads():
            return False
        try:
            async with asyncio.timeout(self.read_budget):
                return await self._write(
                    [self.prefix + key], [state.version, state.dumps(), ttl_ms]
                )
        except TimeoutError:
            # Abandoned, not failed: it may still land, and a versioned write
            # landing late cannot undo a newer state.
            self._slow()
            return False

    async def announce(self, key: str, state: TokenState, change: Change) -> bool:
        """Store a committed change's ``state`` and append its event, in one script.

        Whether Redis took both: a change whose event is not in the stream
        must stay in the outbox until it is, or subscribers would never hear it.
        """
        ttl_ms = self.ttl_ms if state.known else self.negative_ttl_ms
        # A zero TTL (caching off) still needs a valid PX: 1 ms.
        args = [state.version, state.dumps(), max(ttl_ms, 1), change, key, self.backlog]
        return await self._write([self.prefix + key, self.stream], args)

    async def announce_many(self, changes: Sequence[tuple[str, TokenState, Change]]) -> list[bool]:
        """:meth:`announce` for a batch's changes, in one pipeline (one round trip); for
        each, whether Redis took it."""
        if self.down:
            self._metrics.redis_skipped.inc()
            return [False] * len(changes)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, state, change in changes:
                    ttl_ms = self.ttl_ms if state.known else self.negative_ttl_ms
                    args: list[Any] = [
                        state.version,
                        state.dumps(),
                        max(ttl_ms, 1),
                        change,
                        key,
                        self.backlog,
                    ]
                    await self._put_if_newer(
                        keys=[self.prefix + key, self.stream], args=args, client=pipe
                    )
                results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return [False] * len(changes)
        taken = [not isinstance(result, Exception) for result in results]
        if not all(taken):
            self._failed(next(r for r in results if isinstance(r, Exception)))
        return taken

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


class Hearing(Protocol):
    """Whether this replica hears every other replica's changes now (see ``invalidation``)."""

    @property
    def live(self) -> bool: ...


#: How the health check sees Redis.
RedisStatus = Literal["disabled", "healthy", "unhealthy"]


class TokenCache:
    """The tiers as the validation path reads them.

    ``suspects`` (rule 3) and ``hearing`` are shared with their owners,
    :class:`~amplify_auth_server.propagation.Propagation` and the
    invalidation bus's lease; this class only reads them.
    """

    def __init__(
        self,
        local: LocalCache,
        shared: RedisCache | None = None,
        *,
        suspects: set[str] | None = None,
        hearing: Hearing | None = None,
    ) -> None:
        self.local = local
        self.shared = shared
        #: Hashes whose new state Redis may not hold: answered from the database.
        self.suspects: set[str] = set() if suspects is None else suspects
        self._hearing = hearing

    @property
    def generation(self) -> int:
        return self.local.generation

    @property
    def inflight(self) -> dict[str, asyncio.Task[TokenState]]:
        return self.local.inflight

    def get_local(self, key: str) -> TokenState | None:
        # With replicas, a local entry is only as good as our hearing of
        # their changes: while deaf, go to Redis every time.
        if self._hearing is not None and not self._hearing.live:
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

    async def redis_status(self) -> RedisStatus:
        """Healthy means answering and heard: a replica deaf to the others'
        changes runs without its local cache."""
        if self.shared is None:
            return "disabled"
        hearing = self._hearing is None or self._hearing.live
        return "healthy" if hearing and await self.shared.ping() else "unhealthy"
