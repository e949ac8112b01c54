"""Keeping every replica's first-level cache in step, through Redis pub/sub.

With several server processes sharing one Redis, each keeps a short-lived
in-process cache in front of Redis (one Redis round trip per validation
would halve throughput). A revoke or extend must reach those caches too,
and must have reached them *before* it returns, so that a validation that
starts after the revoke returns is never answered "valid" by any replica:

1. The writer publishes the token's new state on one channel.
2. Every subscribed replica (the writer's own included) stores it in its
   local cache, then acknowledges on the writer's own ack channel.
3. The writer waits until as many acks arrived as ``PUBLISH`` reported
   receivers, or ``INVALIDATION_ACK_TIMEOUT`` passed (then it logs which
   guarantee weakened: a replica that did not confirm serves its local
   entry for at most ``LOCAL_CACHE_TTL``).

A replica uses its local cache only while its subscription is live. When
it (re)subscribes it first replays the Redis writes it missed, then clears
its local cache, and only then trusts it again: whatever it missed while
deaf can no longer be served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any, Final

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError

from amplify_auth_server.cache import LocalCache, RedisCache, RedisUnavailable, TokenState

logger = logging.getLogger("amplify_auth_server.invalidation")

RECONNECT_DELAYS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)


class _Acks:
    __slots__ = ("done", "expected", "received")

    def __init__(self) -> None:
        self.received = 0
        self.expected: int | None = None
        self.done = asyncio.Event()

    def settle(self) -> None:
        if self.expected is not None and self.received >= self.expected:
            self.done.set()


class InvalidationBus:
    """Publishes token state changes to every replica and applies theirs."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        local: LocalCache,
        shared: RedisCache,
        ack_timeout: float,
    ) -> None:
        self.client = client
        self.local = local
        self.shared = shared
        self.ack_timeout = ack_timeout
        self.replica_id = secrets.token_hex(8)
        self.channel = f"{prefix}:invalidate"
        self._ack_prefix = f"{prefix}:ack:"
        self.ack_channel = self._ack_prefix + self.replica_id
        self._pending: dict[str, _Acks] = {}
        self._live = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def live(self) -> bool:
        return self._live.is_set()

    async def wait_live(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._live.wait()
        except TimeoutError:
            return False
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="amplify-auth-invalidation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._live.clear()

    async def publish(self, key: str, state: TokenState) -> None:
        """Hand ``state`` to every replica; return once they confirmed or time ran out."""
        nonce = secrets.token_hex(8)
        acks = self._pending[nonce] = _Acks()
        message = orjson.dumps(
            {"origin": self.replica_id, "nonce": nonce, "key": key, "state": state.dumps().decode()}
        )
        try:
            acks.expected = int(await self.client.publish(self.channel, message))
            acks.settle()
            await asyncio.wait_for(acks.done.wait(), self.ack_timeout)
        except TimeoutError:
            logger.warning(
                "%d of %d replicas did not confirm an invalidation within %.2fs; they may "
                "serve their local entry until it expires (LOCAL_CACHE_TTL)",
                (acks.expected or 0) - acks.received,
                acks.expected or 0,
                self.ack_timeout,
            )
        except (RedisError, OSError) as exc:
            logger.warning(
                "could not publish an invalidation (%s); replicas that still hear Redis "
                "may serve their local entry until it expires (LOCAL_CACHE_TTL)",
                type(exc).__name__,
            )
        finally:
            del self._pending[nonce]

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, RedisUnavailable) as exc:
                if self.live:
                    logger.warning(
                        "lost the invalidation channel (%s); local cache off until it is back",
                        type(exc).__name__,
                    )
            except Exception:
                logger.exception("invalidation listener failed; restarting it")
            if self.live:
                attempt = 0
            self._live.clear()
            self.local.clear()
            await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
            attempt += 1

    async def _listen(self) -> None:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel, self.ack_channel)
            # Order matters: replay what Redis missed, forget what we may have
            # missed, and only then serve from the local cache again.
            await self.shared.repair()
            self.local.clear()
            self._live.set()
            logger.info("invalidation channel live (replica %s)", self.replica_id)
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is not None:
                    await self._handle(message)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py

    async def _handle(self, message: dict[str, Any]) -> None:
        channel = message["channel"].decode()
        if channel == self.ack_channel:
            acks = self._pending.get(message["data"].decode())
            if acks is not None:
                acks.received += 1
                acks.settle()
            return
        data = orjson.loads(message["data"])
        self.local.put(data["key"], TokenState.loads(data["state"]))
        await self.client.publish(self._ack_prefix + data["origin"], data["nonce"])
