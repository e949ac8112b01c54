"""Token change events, for the SDK caches that must drop a revoked token now.

A service's SDK keeps validations for ``cache_ttl``; without a push, a
revoked token stays valid in that cache until the TTL runs out. So every
committed change to a token (revoke, extend, the registration of a token
someone may have tried before) becomes an event, and each server process
streams the events to its subscribers (``GET /auth/events``, see
:mod:`amplify_auth_server.routes.events`).

An event carries the token's SHA-256 (what the SDK keys its cache by), the
kind of change and the row's version: never the raw token, nor the token's
id, name or scopes. A subscriber learns only that some token it may have
cached changed.

Where the events live:

* **With Redis** (:class:`RedisEventFeed`), in one Redis Stream that every
  replica reads: the writer appends an event in the same Lua script that
  writes the token's new state to the shared cache, so the stream holds
  every change Redis holds, and a change that Redis could not take stays in
  the cache outbox and is appended when the outbox replays it. Each process
  reads the stream with one blocking ``XREAD`` and fans it out to its own
  subscribers, so a change made through any replica reaches the subscribers
  of every replica.
* **Embedded** (:class:`MemoryEventFeed`), in process memory.

Both keep the last ``EVENT_BACKLOG`` events, and an event's id is its place
in that log. A subscriber that reconnects with ``Last-Event-ID`` gets what
it missed, if the log still holds the event it last saw (``XRANGE`` finds
it; it was not trimmed, and Redis was not restarted in between). Otherwise
it gets a ``reset``: it cannot know what it missed, so it must drop its
whole cache.

A subscription is a bounded queue: a subscriber that falls
``SUBSCRIBER_QUEUE`` events behind is disconnected (it reconnects and
replays from the log) rather than let the server's memory grow.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Literal

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError

from amplify_auth_server.background import RedisFollower
from amplify_auth_server.errors import ServiceUnavailable, ShuttingDown

logger = logging.getLogger("amplify_auth_server.events")

#: The changes the server announces. A subscriber evicts on any event with a
#: token hash, whatever its change, so that a newer server's kinds are safe.
Change = Literal["revoked", "extended", "registered", "rotated"]

#: Events kept for subscribers that reconnect, per feed.
EVENT_BACKLOG: Final = 10_000
#: Events a subscriber may fall behind by before it is disconnected: as many
#: as the backlog, so that a bulk revocation (up to 10 000 tokens at once)
#: reaches a live subscriber as events, not as a disconnection and a reset
#: that empties its whole cache. The queue holds references to the events
#: every subscriber shares: 8 bytes a slot, 80 KiB for a subscriber that is
#: the whole backlog behind.
SUBSCRIBER_QUEUE: Final = EVENT_BACKLOG
#: Events replayed to a reconnecting subscriber at most; one that missed more
#: gets a reset. A replay from Redis builds its events anew for that one
#: subscriber (a few hundred bytes each), so this bounds what a reconnection
#: takes: a thousand subscribers reconnecting at once must not hold ten
#: million events.
MAX_REPLAY: Final = 1_000
#: How long one XREAD waits for new events; well under the reader's socket
#: timeout (5 s), so that neither a quiet stream nor a slow link is mistaken
#: for a dead Redis.
READ_BLOCK_MS: Final = 500
_MARKER: Final = b"marker"
_REDIS_ID: Final = re.compile(r"(\d{1,20})-(\d{1,20})")
#: A Redis stream id is two unsigned 64-bit numbers; Redis refuses larger ones.
_REDIS_ID_PART_MAX: Final = 2**64 - 1
_MEMORY_ID: Final = re.compile(r"([0-9a-f]{16}):(\d{1,20})")


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One committed change to one token, as subscribers see it."""

    id: str
    change: str
    token_hash: str = field(repr=False)
    version: int

    def data(self) -> str:
        return orjson.dumps({"token_hash": self.token_hash, "version": self.version}).decode()


class TooManySubscribers(ServiceUnavailable):
    code = "too_many_subscribers"


class FeedUnavailable(ServiceUnavailable):
    default_detail = "the event stream is not available right now (redis is not answering)"


class Subscriber:
    """One subscriber: what to send first, then a queue of live events.

    ``reset`` True means the subscriber must drop everything it cached (it
    gave no ``Last-Event-ID``, or one the log no longer leads on from);
    ``head`` is the id it resumes from. ``None`` in the queue ends the
    stream: the feed went down, the subscriber fell too far behind, or the
    server is stopping.
    """

    __slots__ = ("backlog", "head", "queue", "reset")

    def __init__(self, head: str) -> None:
        self.head = head
        self.reset = True
        self.backlog: list[TokenEvent] = []
        self.queue: asyncio.Queue[TokenEvent | None] = asyncio.Queue(SUBSCRIBER_QUEUE + 1)

    def offer(self, event: TokenEvent | None) -> bool:
        """Queue ``event``; False (and the stream ended) if the subscriber is too far behind."""
        if event is not None and self.queue.qsize() >= SUBSCRIBER_QUEUE:
            # The last slot is kept for this end-of-stream.
            self.queue.put_nowait(None)
            return False
        self.queue.put_nowait(event)
        return True


class EventFeed(ABC):
    """The events of one process, and its subscribers."""

    def __init__(
        self, *, max_subscribers: int, on_event: Callable[[str], None] | None = None
    ) -> None:
        self.max_subscribers = max_subscribers
        self._subscribers: set[Subscriber] = set()
        self._closed = False
        #: Called with each event's token hash before subscribers see it.
        self._on_event = on_event

    @property
    @abstractmethod
    def live(self) -> bool:
        """Whether the feed hears every change now (Redis answers its reads)."""

    @property
    @abstractmethod
    def head(self) -> str:
        """The id of the last event (or marker) this process has seen."""

    @abstractmethod
    def backlog(self, since: str) -> Awaitable[list[TokenEvent] | None]:
        """The events after ``since`` up to :attr:`head`; None if the log cannot tell."""

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def subscribe(self, last_event_id: str | None) -> Subscriber:
        """A new subscription, resumed after ``last_event_id`` when the log allows.

        Raises :class:`TooManySubscribers` past ``max_subscribers``, and
        :class:`FeedUnavailable` while the feed cannot hear changes.
        """
        if self._closed:
            raise ShuttingDown()
        if len(self._subscribers) >= self.max_subscribers:
            raise TooManySubscribers(
                f"this server already streams events to {self.max_subscribers} subscribers "
                "(EVENTS_MAX_SUBSCRIBERS); retry later, or on another replica"
            )
        if not self.live:
            raise FeedUnavailable()
        # Registered before the backlog is read, with the head of this
        # moment: every later event reaches the queue, every earlier one is
        # in the backlog, and none is in both.
        subscription = Subscriber(self.head)
        self._subscribers.add(subscription)
        try:
            if last_event_id is not None:
                backlog = await self.backlog(last_event_id)
                if backlog is not None:
                    subscription.reset = False
                    subscription.backlog = backlog
        except BaseException:
            self._subscribers.discard(subscription)
            raise
        return subscription

    def unsubscribe(self, subscription: Subscriber) -> None:
        self._subscribers.discard(subscription)

    def _dispatch(self, event: TokenEvent) -> None:
        if self._on_event is not None:
            self._on_event(event.token_hash)
        behind = [s for s in self._subscribers if not s.offer(event)]
        for subscription in behind:
            self._subscribers.discard(subscription)
        if behind:
            logger.warning(
                "disconnected %d event subscriber(s) more than %d events behind; they "
                "reconnect and catch up from the log",
                len(behind),
                SUBSCRIBER_QUEUE,
            )

    def close(self) -> None:
        """End every stream and refuse new ones: the server is stopping."""
        self._closed = True
        self.close_all()

    def close_all(self) -> None:
        """End every subscriber's stream (they reconnect, elsewhere or later)."""
        for subscription in self._subscribers:
            subscription.offer(None)
        self._subscribers.clear()


class MemoryEventFeed(EventFeed):
    """The embedded default's feed: the log lives in this process.

    Ids are ``<epoch>:<sequence>``, the epoch drawn at start-up: a
    subscriber that resumes after a restart presents another epoch, and so
    gets a reset.
    """

    def __init__(self, *, max_subscribers: int, backlog: int = EVENT_BACKLOG) -> None:
        super().__init__(max_subscribers=max_subscribers)
        self.epoch = secrets.token_hex(8)
        self._sequence = 0
        self._log: deque[tuple[int, TokenEvent]] = deque(maxlen=backlog)

    @property
    def live(self) -> bool:
        return True

    @property
    def head(self) -> str:
        return f"{self.epoch}:{self._sequence}"

    def append(self, change: Change, token_hash: str, version: int) -> None:
        self._sequence += 1
        event = TokenEvent(self.head, change, token_hash, version)
        self._log.append((self._sequence, event))
        self._dispatch(event)

    async def backlog(self, since: str) -> list[TokenEvent] | None:
        match = _MEMORY_ID.fullmatch(since)
        if match is None or match[1] != self.epoch:
            return None
        sequence = int(match[2])
        oldest = self._log[0][0] if self._log else self._sequence + 1
        if sequence > self._sequence or sequence < oldest - 1:
            return None
        if self._sequence - sequence > MAX_REPLAY:
            return None
        return [event for number, event in self._log if number > sequence]


class RedisEventFeed(EventFeed, RedisFollower):
    """Every replica's reader of the shared stream, fanning it out to its subscribers.

    ``reader`` is a connection of its own (a blocking ``XREAD`` holds it),
    built without retries: a read that fails ends every subscriber's stream
    at once, since this process can no longer promise them every change.
    They reconnect, and resume from the log once Redis answers again.

    ``on_event`` is given each event's token hash before any subscriber
    sees the event: the first-level cache drops its entry there, since the
    event can reach a subscriber before the invalidation channel brings the
    new state, and a subscriber that validates again at once must not get
    the old state from this replica.
    """

    task_name = "amplify-auth-events"
    logger = logger
    lost_message = "lost the event stream (%s); subscribers are disconnected until redis answers"

    def __init__(
        self,
        client: redis.Redis,
        reader: redis.Redis,
        *,
        stream: str,
        max_subscribers: int,
        backlog: int = EVENT_BACKLOG,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(max_subscribers=max_subscribers, on_event=on_event)
        self.client = client
        self.reader = reader
        self.stream = stream
        self.backlog_size = backlog
        self._head = "0-0"
        self._live = asyncio.Event()

    @property
    def live(self) -> bool:
        return self._live.is_set()

    @property
    def head(self) -> str:
        return self._head

    async def wait_live(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._live.wait()
        except TimeoutError:
            return False
        return True

    @property
    def following(self) -> bool:
        return self.live

    def lost(self) -> None:
        self._live.clear()
        self.close_all()

    async def follow(self) -> None:
        await self._read()

    async def _read(self) -> None:
        # A marker gives this process a head that is in the log, even when
        # no change was ever made (or Redis was just restarted, empty).
        self._head = (await self._add_marker()).decode()
        self._live.set()
        logger.info("event stream live from %s", self._head)
        while True:
            # redis-py types stream replies loosely: bytes, as this client
            # is built without decode_responses.
            reply: list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] = (
                await self.reader.xread({self.stream: self._head}, block=READ_BLOCK_MS, count=500)  # type: ignore[assignment]
            )
            for _, entries in reply:
                for entry_id, fields in entries:
                    self._head = entry_id.decode()
                    event = _decode(self._head, fields)
                    if event is not None:
                        self._dispatch(event)

    async def _add_marker(self) -> bytes:
        entry_id = await self.client.xadd(
            self.stream, {"change": _MARKER}, maxlen=self.backlog_size, approximate=True
        )
        assert isinstance(entry_id, bytes)
        return entry_id

    async def backlog(self, since: str) -> list[TokenEvent] | None:
        match = _REDIS_ID.fullmatch(since)
        if match is None or max(int(match[1]), int(match[2])) > _REDIS_ID_PART_MAX:
            # Not an id of this log (nor one Redis would take: an error from
            # XRANGE would be a 503, and the subscriber would retry it forever).
            return None
        try:
            entries: list[tuple[bytes, dict[bytes, bytes]]] = await self.client.xrange(  # type: ignore[assignment]
                self.stream, min=since, max=self._head, count=MAX_REPLAY + 2
            )
        except (RedisError, OSError) as exc:
            raise FeedUnavailable() from exc
        # The entry the subscriber last saw must still be there: if it was
        # trimmed, or Redis restarted empty, what came after it is unknown.
        if not entries or entries[0][0].decode() != since:
            return None
        if len(entries) > MAX_REPLAY + 1:
            return None  # too far behind: see MAX_REPLAY
        events = (_decode(entry_id.decode(), fields) for entry_id, fields in entries[1:])
        return [event for event in events if event is not None]


def _decode(entry_id: str, fields: dict[bytes, bytes]) -> TokenEvent | None:
    token_hash = fields.get(b"hash")
    if token_hash is None:
        return None  # a marker: nothing to evict
    change = fields.get(b"change", b"changed").decode()
    return TokenEvent(entry_id, change, token_hash.decode(), int(fields.get(b"version", b"0")))
