"""Failure throttling: a client past its budget of failures is answered 429.

Only failures are counted, never successes: a valid token costs nothing
here, not even the client's address, so the validation hot path is as it
was. What counts, per client and per kind, each against its own budget
(settings, in `limits`' notation, such as ``300/minute``):

* ``validation``: validations answered unknown, revoked or expired;
* ``malformed``: validations of a malformed token (a generous budget: a
  service forwarding its callers' garbage makes many, and each costs us a
  checksum only);
* ``admin``: 401 and 403 on the management routes;
* ``signin``: refused sign-ins to the web console, which asks
  :meth:`FailureThrottle.allows` first, so that a client past its budget
  has no token checked at all, not even the right one.

A failure past the budget is answered ``429 too_many_failures`` with
``Retry-After`` instead of its usual answer. A valid token is still
answered valid, whoever presents it: tokens are too long to guess, so the
answer teaches a throttled client nothing, and a service whose callers
send garbage must not stop authenticating the others.

The windows are `limits`' fixed windows, each starting at a client's first
failure. With ``REDIS_URL`` the counts live in Redis (keys under the
server's prefix), shared by every replica; embedded, in process. When Redis
is down or slower than ``REDIS_READ_BUDGET`` (the same
:class:`~amplify_auth_server.cache.RedisBudget` the cache tier follows),
counting falls back to this process's own counts: no 500, no wait, and the
budget is then per replica until Redis answers.

Who a client is: the socket's peer address, or the address a trusted proxy
forwarded (``TRUSTED_PROXIES``, applied by uvicorn's ProxyHeadersMiddleware
before anything here runs). An IPv6 client is its /64, the block one host is
usually given, so that it cannot take a new identity per address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter as LocalRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import Scope

from amplify_auth_server.cache import DEFAULT_READ_BUDGET, RedisBudget
from amplify_auth_server.errors import TooManyFailures
from amplify_auth_server.metrics import Metrics

logger = logging.getLogger("amplify_auth_server.throttle")

Kind = Literal["validation", "malformed", "admin", "signin"]

#: The validation results that count as failures, and against which budget.
FAILED_VALIDATIONS: Final[dict[str, Kind]] = {
    "unknown": "validation",
    "revoked": "validation",
    "expired": "validation",
    "malformed": "malformed",
}

#: Seconds between two sweeps of the in-process counts whose windows ended.
_SWEEP_INTERVAL: Final = 1.0


class LoopMemoryStorage(MemoryStorage):
    """`limits`' memory storage, for one event loop: counted without a timer thread.

    The library's own sweeps ended windows from a timer thread that each
    count restarts once the last one has run; starting that thread (waiting
    for it to take the GIL) was most of a failure's cost, and put a counted
    failure at about 0.7x the throughput of an uncounted one. Here a count is
    a dict update (the event loop is the only caller, so no lock), an ended
    window is dropped when its key is read (as the library's ``get`` does),
    and :meth:`sweep`, called by the throttle at most once a second, drops the
    windows that ended unread, so memory holds one second's worth of clients
    past their windows at most.
    """

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        current = self.get(key) + amount  # get drops a window that ended
        self.storage[key] = current
        if current == amount:
            self.expirations[key] = time.time() + expiry
        return current

    def sweep(self, now: float) -> None:
        ended = [key for key, until in self.expirations.items() if until <= now]
        for key in ended:
            self.storage.pop(key, None)
            self.expirations.pop(key, None)
            self.locks.pop(key, None)


#: Clients this process remembers as past their budget, at most; past it the
#: memo is emptied (each is then asked about again: a cost, not a hole).
_MAX_BLOCKED: Final = 10_000


@dataclass(frozen=True, slots=True)
class Budgets:
    """Each kind's budget, as `limits` items (parsed once, at start-up)."""

    validation: RateLimitItem
    malformed: RateLimitItem
    admin: RateLimitItem
    signin: RateLimitItem

    @classmethod
    def parse(cls, *, validation: str, malformed: str, admin: str, signin: str) -> Budgets:
        return cls(parse(validation), parse(malformed), parse(admin), parse(signin))

    def of(self, kind: Kind) -> RateLimitItem:
        item: RateLimitItem = getattr(self, kind)
        return item


def client_of(scope: Scope) -> str:
    """Who sent the request, as the throttle and the audit name it."""
    client = scope.get("client")
    if not client:
        return "unknown"
    host: str = client[0]
    if ":" in host:
        try:
            return str(ipaddress.IPv6Network(f"{host}/64", strict=False))
        except ValueError:
            return host
    return host


class FailureThrottle:
    """Counts failures per client and kind; :meth:`failed` raises 429 past the budget.

    ``redis`` None: in process only (embedded). Otherwise Redis first, this
    process's counts while ``budget`` says Redis is down or slow.
    """

    def __init__(
        self,
        budgets: Budgets,
        *,
        metrics: Metrics,
        redis: Redis | None = None,
        prefix: str = "",
        budget: RedisBudget | None = None,
    ) -> None:
        self.budgets = budgets
        # Bound once: a label lookup per failure would cost more than the count.
        self._counted = {
            (kind, shared): metrics.failures.labels(kind, "redis" if shared else "local")
            for kind in get_args(Kind)
            for shared in (True, False)
        }
        self._refused = {kind: metrics.throttled.labels(kind) for kind in get_args(Kind)}
        # Synchronous: counting in memory has no I/O to wait for (the async
        # storage starts a task per count), and without the library's timer
        # thread (see LoopMemoryStorage).
        self._memory = LoopMemoryStorage()
        self._local = LocalRateLimiter(self._memory)
        self._sweep_at = time.time() + _SWEEP_INTERVAL
        self._shared: FixedWindowRateLimiter | None = None
        self._budget = budget
        if redis is not None:
            # Our connection pool (its timeouts and retries), not one of its own.
            storage: Storage = RedisStorage(
                "async+redis://",
                implementation="redispy",
                key_prefix=f"{prefix}:throttle",
                # limits types its options as scalars; the pool is one it documents.
                connection_pool=redis.connection_pool,  # type: ignore[arg-type]
            )
            self._shared = FixedWindowRateLimiter(storage)
        #: (kind, client) -> when its block ends (time.time()): answered
        #: without a round trip until then.
        self._blocked: dict[tuple[Kind, str], float] = {}

    async def failed(self, kind: Kind, client: str) -> None:
        """Count one failure of ``client``; raise :class:`TooManyFailures` past its budget."""
        now = time.time()
        if now >= self._sweep_at:
            self._memory.sweep(now)
            self._sweep_at = now + _SWEEP_INTERVAL
        until = self._blocked.get((kind, client))
        if until is not None:
            if until > now:
                self._refused[kind].inc()
                raise TooManyFailures.after(until - now, kind)
            del self._blocked[(kind, client)]
        item = self.budgets.of(kind)
        shared, allowed = await self._hit(item, kind, client)
        self._counted[kind, shared].inc()
        if allowed:
            return
        self._refused[kind].inc()
        until = await self._reset_time(shared, item, kind, client)
        if len(self._blocked) >= _MAX_BLOCKED:
            self._blocked.clear()
        self._blocked[(kind, client)] = until
        logger.warning("client %s is past its budget of %s failures (%s)", client, kind, item)
        raise TooManyFailures.after(until - time.time(), kind)

    async def allows(self, kind: Kind, client: str) -> bool:
        """Whether one more failure of ``client`` would still be within its budget.

        For a check that must not even be tried past the budget (a console
        sign-in); it counts nothing. Where :meth:`failed` would count it.
        """
        until = self._blocked.get((kind, client))
        if until is not None and until > time.time():
            return False
        item = self.budgets.of(kind)
        shared = self._shared
        if shared is not None:
            answer = await self._in_redis(shared.test(item, kind, client))
            if answer is not None:
                return answer
        return self._local.test(item, kind, client)

    async def _hit(self, item: RateLimitItem, kind: Kind, client: str) -> tuple[bool, bool]:
        """Count the failure where it is shared if Redis answers in time, else here:
        whether it was counted in Redis, and whether it was within the budget."""
        shared = self._shared
        if shared is not None:
            answer = await self._in_redis(shared.hit(item, kind, client))
            if answer is not None:
                return True, answer
        return False, self._local.hit(item, kind, client)

    async def _in_redis(self, call: Coroutine[Any, Any, bool]) -> bool | None:
        """``call``'s answer if Redis gives it within the read budget; None (and the
        budget told) if not, or if the budget already says Redis is away."""
        budget = self._budget
        # Not budget.skip(): a failure counted here is no cache lookup, and
        # must not show in the cache's metrics (its own are failures_total).
        if budget is not None and budget.avoided:
            call.close()
            return None
        try:
            async with asyncio.timeout(_wait(budget)):
                return await call
        except TimeoutError:
            if budget is not None:
                budget.slow()
        except (RedisError, OSError) as exc:
            if budget is not None:
                budget.failed(exc)
        return None

    async def _reset_time(
        self, shared: bool, item: RateLimitItem, kind: Kind, client: str
    ) -> float:
        """When the window of ``client``'s failures ends; at worst, a whole window from now."""
        fallback = time.time() + item.get_expiry()
        if not shared or self._shared is None:
            stats = self._local.get_window_stats(item, kind, client)
        else:
            try:
                async with asyncio.timeout(_wait(self._budget)):
                    stats = await self._shared.get_window_stats(item, kind, client)
            except (TimeoutError, RedisError, OSError):
                return fallback
        # Redis rounds a TTL down to the second, and a key may just have gone.
        return stats.reset_time if stats.reset_time > time.time() else fallback


def _wait(budget: RedisBudget | None) -> float:
    """How long a call to Redis may take here: the validation path's read budget."""
    return DEFAULT_READ_BUDGET if budget is None else budget.read_budget
