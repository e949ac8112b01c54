"""Keeping every replica's first-level cache in step, through Redis pub/sub.

With several server processes sharing one Redis, each keeps a short-lived
in-process cache in front of Redis (one Redis round trip per validation
would halve throughput). A revoke or extend must reach those caches too,
and must have reached them before it returns, so that a validation that
starts after the revoke returns is never answered "valid" by any replica:

1. The writer publishes the token's new state on one channel.
2. Every subscribed replica (the writer's own included) stores it in its
   local cache, then acknowledges with its replica id on the writer's ack
   channel.
3. The revoke's caller waits until as many distinct replicas acknowledged
   as ``PUBLISH`` reported receivers, or ``INVALIDATION_ACK_TIMEOUT``
   passed (then it logs that the guarantee weakened: a replica that did not
   confirm serves its local entry for at most ``LOCAL_CACHE_TTL``).

A replica uses its local cache only while it is sure to hear: it holds a
*lease* (:class:`Lease`, which the read path looks at) that every message
renews, and it pings its own subscription when the channel is quiet. A
subscription that breaks, or stays silent past the lease (a half-open
connection), ends the lease at once; the replica
resubscribes, clears its local cache, and only then trusts it again. The
subscription has a connection of its own that never reconnects by itself,
so that no gap in hearing can go unnoticed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Sequence
from typing import Any, Final

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError

from amplify_auth_server.background import RedisFollower
from amplify_auth_server.cache import LocalCache, TokenState

logger = logging.getLogger("amplify_auth_server.invalidation")

#: Ping the subscription after this long without a message.
HEARTBEAT_INTERVAL: Final = 1.0
#: Hearing nothing for this long (pings included) ends the lease.
LEASE: Final = 3.0
_PING: Final = b"amplify-heartbeat"


class Deaf(Exception):
    """The subscription went quiet past its lease."""


class Lease:
    """Whether this replica hears the others now: renewed by every message, ended by silence.

    Made before the bus and the read path, and given to both: the bus renews
    and ends it, :class:`~amplify_auth_server.cache.TokenCache` reads it.
    """

    __slots__ = ("_until",)

    def __init__(self) -> None:
        self._until = 0.0

    @property
    def live(self) -> bool:
        return time.monotonic() < self._until

    def renew(self) -> None:
        self._until = time.monotonic() + LEASE

    def end(self) -> None:
        self._until = 0.0


class _Acks:
    __slots__ = ("done", "expected", "received")

    def __init__(self) -> None:
        self.received: set[str] = set()
        self.expected: int | None = None
        self.done = asyncio.Event()

    def settle(self) -> None:
        if self.expected is not None and len(self.received) >= self.expected:
            self.done.set()


class InvalidationBus(RedisFollower):
    """Publishes token state changes to every replica and applies theirs."""

    task_name = "amplify-auth-invalidation"
    logger = logger
    lost_message = "lost the invalidation channel (%s); local cache off until it is back"
    failures = (RedisError, OSError, Deaf)

    def __init__(
        self,
        client: redis.Redis,
        listener: redis.Redis,
        *,
        prefix: str,
        local: LocalCache,
        lease: Lease,
        ack_timeout: float,
    ) -> None:
        self.client = client
        self.listener = listener
        self.local = local
        self.lease = lease
        self.ack_timeout = ack_timeout
        self.replica_id = secrets.token_hex(8)
        self.channel = f"{prefix}:invalidate"
        self._ack_prefix = f"{prefix}:ack:"
        self.ack_channel = self._ack_prefix + self.replica_id
        self._pending: dict[str, _Acks] = {}
        self._subscribed = asyncio.Event()

    @property
    def live(self) -> bool:
        return self.lease.live

    async def wait_live(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._subscribed.wait()
        except TimeoutError:
            return False
        return self.live

    async def publish(self, key: str, state: TokenState) -> Awaitable[None]:
        """Hand one ``state`` to every replica (see :meth:`publish_many`)."""
        return await self.publish_many([(key, state)])

    async def publish_many(self, changes: Sequence[tuple[str, TokenState]]) -> Awaitable[None]:
        """Hand these states to every replica, in one message; returns the wait for their
        confirmations (one per replica, for all of them)."""
        nonce = secrets.token_hex(8)
        acks = self._pending[nonce] = _Acks()
        message = orjson.dumps(
            {
                "origin": self.replica_id,
                "nonce": nonce,
                "changes": [[key, state.dumps().decode()] for key, state in changes],
            }
        )
        try:
            acks.expected = int(await self.client.publish(self.channel, message))
        except (RedisError, OSError) as exc:
            del self._pending[nonce]
            logger.warning(
                "could not publish %d change(s) (%s); other replicas may serve their local "
                "entry until it expires (LOCAL_CACHE_TTL)",
                len(changes),
                type(exc).__name__,
            )
            return _nothing()
        acks.settle()
        return asyncio.ensure_future(self._confirmed(nonce, acks, len(changes)))

    async def _confirmed(self, nonce: str, acks: _Acks, count: int) -> None:
        try:
            async with asyncio.timeout(self.ack_timeout):
                await acks.done.wait()
        except TimeoutError:
            logger.warning(
                "%d of %d replicas did not confirm %d change(s) within %.2fs; they "
                "may serve their local entry until it expires (LOCAL_CACHE_TTL)",
                (acks.expected or 0) - len(acks.received),
                acks.expected or 0,
                count,
                self.ack_timeout,
            )
        finally:
            self._pending.pop(nonce, None)

    @property
    def following(self) -> bool:
        return self._subscribed.is_set()

    def lost(self) -> None:
        self.lease.end()
        self._subscribed.clear()

    async def follow(self) -> None:
        await self._listen()

    async def _listen(self) -> None:
        pubsub = self.listener.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel, self.ack_channel)
            # Whatever changed while we were deaf is unknown: forget it all
            # before serving from the local cache again.
            self.local.clear()
            self.lease.renew()
            self._subscribed.set()
            logger.info("invalidation channel live (replica %s)", self.replica_id)
            pinged = False
            while True:
                message = await pubsub.get_message(timeout=HEARTBEAT_INTERVAL)
                if not self.live:
                    raise Deaf()
                if message is None:
                    if not pinged:
                        await pubsub.ping(_PING)
                        pinged = True
                    continue
                self.lease.renew()
                pinged = False
                await self._handle(message)
        finally:
            self.lease.end()
            # Untyped before redis-py 8.2; typed since.
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]

    async def _handle(self, message: dict[str, Any]) -> None:
        if message["type"] == "pong":
            return
        channel = message["channel"].decode()
        if channel == self.ack_channel:
            nonce, _, replica = message["data"].decode().partition(":")
            acks = self._pending.get(nonce)
            if acks is not None:
                acks.received.add(replica)
                acks.settle()
            return
        data = orjson.loads(message["data"])
        # One change (the single form), or a batch's.
        changes = data["changes"] if "changes" in data else [[data["key"], data["state"]]]
        for key, state in changes:
            self.local.changed(key, TokenState.loads(state))
        await self.client.publish(
            self._ack_prefix + data["origin"], f"{data['nonce']}:{self.replica_id}"
        )


async def _nothing() -> None:
    return None
