"""What the server remembers about tokens, in two tiers.

* :class:`LocalCache`, in-process. Without Redis it is the only cache and
  holds entries for ``TOKEN_CACHE_TTL``. With Redis it is a short-lived
  first level (``LOCAL_CACHE_TTL``) that saves a Redis round trip per
  validation, and it is used only while this replica hears the other
  replicas' invalidations (see :mod:`amplify_auth_server.invalidation`).
* :class:`RedisCache`, shared by every replica.

Every entry carries the token row's ``version``, and every tier accepts a
write only if it is at least as new as what it holds. That one rule closes
the classic race where a validation reads the database, a revocation
commits and updates the cache, and the slow validation then writes the old
"valid" state back over it.

Keys are SHA-256 hex digests; values hold ids, names, scopes and
timestamps. Nothing here ever sees a raw token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from typing import Any, Final, Protocol

import orjson
import redis.asyncio as redis
from cachetools import LRUCache
from redis.exceptions import RedisError

from amplify_auth_server.metrics import Metrics
from amplify_auth_server.store import TokenRecord

logger = logging.getLogger("amplify_auth_server.cache")

# After a Redis failure, validation skips Redis for this long instead of
# paying a connection error (or a timeout) on every request.
REDIS_RETRY_INTERVAL: Final = 1.0
# Cache writes that failed while Redis was unreachable, replayed when it
# answers again. Beyond this many, the whole namespace is dropped instead.
MAX_PENDING_REPAIRS: Final = 10_000


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
    """In-process LRU of token states with per-entry deadlines.

    Not thread-safe, and it need not be: the server touches it only from the
    event loop.
    """

    def __init__(self, *, maxsize: int, ttl: float, negative_ttl: float) -> None:
        self._entries: LRUCache[str, tuple[TokenState, float]] = LRUCache(maxsize=max(maxsize, 1))
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.enabled = maxsize > 0 and ttl > 0

    def get(self, key: str) -> TokenState | None:
        if not self.enabled:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        state, fresh_until = entry
        if fresh_until <= time.monotonic():
            return None
        return state

    def put(self, key: str, state: TokenState) -> None:
        """Remember ``state`` unless an entry at least as new is already held."""
        if not self.enabled:
            return
        current = self._entries.get(key)
        if current is not None and current[0].version > state.version:
            return
        ttl = self.ttl if state.known else self.negative_ttl
        if ttl > 0:
            self._entries[key] = (state, time.monotonic() + ttl)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# KEYS[1] = entry key. ARGV = version, payload, ttl in ms. Writes only if no
# newer version is held; see the module docstring for why.
_PUT_IF_NEWER: Final = """
local current = redis.call('GET', KEYS[1])
if current then
  local held = tonumber(string.match(current, '^(%d+)|'))
  if held and held > tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
return 1
"""


class RedisUnavailable(Exception):
    """Redis did not answer; the caller falls back to the next tier."""


class RedisCache:
    """The shared tier: one key per token hash, ``version|json`` values."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        ttl: float,
        negative_ttl: float,
        metrics: Metrics,
    ) -> None:
        self.client = client
        self.prefix = f"{prefix}:tok:"
        self.ttl_ms = int(ttl * 1000)
        self.negative_ttl_ms = int(negative_ttl * 1000)
        self._put_if_newer = client.register_script(_PUT_IF_NEWER)
        self._down_until = 0.0
        self._repairs: dict[str, TokenState] = {}
        self._repairs_overflowed = False
        self._repair_lock = asyncio.Lock()
        self._repair_task: asyncio.Task[None] | None = None
        self._metrics = metrics

    async def _usable(self) -> bool:
        """Whether to read from Redis now: not while it is failing, nor while
        it may still hold a state that a missed write should have replaced."""
        if time.monotonic() < self._down_until:
            return False
        if self._repairs or self._repairs_overflowed:
            try:
                await self.repair()
            except RedisUnavailable:
                return False
        return True

    def _failed(self, exc: BaseException) -> None:
        if time.monotonic() >= self._down_until:
            logger.warning(
                "redis unreachable (%s); validating from the database", type(exc).__name__
            )
        self._down_until = time.monotonic() + REDIS_RETRY_INTERVAL

    async def get(self, key: str) -> TokenState | None:
        """The shared state of ``key``, or None on a miss or while Redis is down."""
        if not await self._usable():
            return None
        try:
            raw = await self.client.get(self.prefix + key)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            self._metrics.redis_error.inc()
            return None
        if raw is None:
            self._metrics.redis_miss.inc()
            return None
        self._metrics.redis_hit.inc()
        # The client is built without decode_responses: values are bytes.
        assert isinstance(raw, bytes)
        _, _, payload = raw.partition(b"|")
        return TokenState.loads(payload)

    async def put(self, key: str, state: TokenState) -> None:
        """Store ``state`` unless Redis holds a newer one; remember it if Redis is down."""
        try:
            await self._put(key, state)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            self._remember(key, state)

    async def _put(self, key: str, state: TokenState) -> None:
        ttl_ms = self.ttl_ms if state.known else self.negative_ttl_ms
        if ttl_ms <= 0:
            return
        await self._put_if_newer(
            keys=[self.prefix + key], args=[state.version, state.dumps(), ttl_ms]
        )

    def _remember(self, key: str, state: TokenState) -> None:
        if not state.known:
            return  # a missed negative entry costs nothing but a lookup
        if len(self._repairs) >= MAX_PENDING_REPAIRS:
            self._repairs_overflowed = True
            self._repairs.clear()
        else:
            current = self._repairs.get(key)
            if current is None or current.version <= state.version:
                self._repairs[key] = state
        if self._repair_task is None or self._repair_task.done():
            self._repair_task = asyncio.create_task(
                self._repair_soon(), name="amplify-auth-redis-repair"
            )

    async def _repair_soon(self) -> None:
        # Other replicas may read Redis while this one cannot write to it:
        # replay the missed writes as soon as Redis answers, not when this
        # replica next happens to read.
        while self._repairs or self._repairs_overflowed:
            await asyncio.sleep(REDIS_RETRY_INTERVAL)
            with contextlib.suppress(RedisUnavailable):
                await self.repair()

    async def close(self) -> None:
        if self._repair_task is not None:
            self._repair_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._repair_task

    async def repair(self) -> None:
        """Replay the writes Redis missed, before anyone reads from it again.

        Raises :class:`RedisUnavailable` if Redis still does not answer.
        """
        async with self._repair_lock:
            await self._repair()

    async def _repair(self) -> None:
        try:
            if self._repairs_overflowed:
                # Too much was missed to replay: drop every entry instead, so
                # that nothing stale can be read back.
                async for batch in self._scan_batches():
                    await self.client.unlink(*batch)
                self._repairs_overflowed = False
                self._repairs.clear()
            while self._repairs:
                key, state = next(iter(self._repairs.items()))
                await self._put(key, state)
                if self._repairs.get(key) is state:
                    del self._repairs[key]
        except (RedisError, OSError) as exc:
            self._failed(exc)
            raise RedisUnavailable() from exc
        self._down_until = 0.0

    async def _scan_batches(self) -> Any:
        batch: list[bytes] = []
        async for name in self.client.scan_iter(match=self.prefix + "*", count=1000):
            batch.append(name)
            if len(batch) >= 1000:
                yield batch
                batch = []
        if batch:
            yield batch

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

    async def publish(self, key: str, state: TokenState) -> None: ...


class TokenCache:
    """The tiers as the validation path and the writer see them."""

    def __init__(
        self,
        local: LocalCache,
        shared: RedisCache | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        self.local = local
        self.shared = shared
        self.publisher = publisher

    def get_local(self, key: str) -> TokenState | None:
        # With replicas, a local entry is only as good as our hearing of
        # their changes: while deaf, go to Redis every time.
        if self.publisher is not None and not self.publisher.live:
            return None
        return self.local.get(key)

    async def get_shared(self, key: str) -> TokenState | None:
        if self.shared is None:
            return None
        state = await self.shared.get(key)
        if state is not None:
            self.local.put(key, state)
        return state

    async def fill(self, key: str, state: TokenState) -> None:
        """Cache what the database said about ``key`` (never over a newer state)."""
        self.local.put(key, state)
        if self.shared is not None:
            await self.shared.put(key, state)

    async def apply(self, key: str, state: TokenState) -> None:
        """Make a committed change visible in every tier and replica before returning."""
        self.local.put(key, state)
        if self.shared is not None:
            await self.shared.put(key, state)
        if self.publisher is not None:
            await self.publisher.publish(key, state)
