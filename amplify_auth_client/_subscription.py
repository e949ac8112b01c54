"""The revocation subscription: the server's change events, evicting this client's cache.

A cached "valid" is believed for ``cache_ttl``; a token revoked meanwhile
stays accepted until then. So each client keeps ``GET /auth/events`` open
(Server-Sent Events, see the server's ``routes/events``) and drops the
entry of every token the server says changed, usually within milliseconds
of the change.

How the cache stays honest around gaps:

* The server's first message is either the events missed since the last id
  this client saw (``Last-Event-ID``), or a ``reset`` when it cannot tell
  what was missed (first connection, trimmed log, Redis or server restarted):
  the client then drops its whole cache rather than trust it.
* ``ready`` marks the subscription live. Until then, and whenever it is
  down, nothing changes: entries live for ``cache_ttl``, as without it.
* A stream that stays silent past ``SILENCE_LIMIT`` (the server sends a
  keepalive every 15 s by default) is taken for dead and reopened.

One daemon thread per client runs the subscription in an event loop of
its own, for both shells: an :class:`~amplify_auth_client.AsyncAuthClient`
then adds no task to the application's loop, and closing either client
cancels the stream at once instead of waiting for a blocked read. The thread
starts with the client's first request to the server (not when the client
is built: a client made at import time in a pre-forking server's master
would hold a stream no worker can use), and a forked child starts its own,
resuming from the parent's last event.

Nothing here sees a raw token: events carry SHA-256 hashes, which is what
the cache is keyed by.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from httpx_sse import SSEError, aconnect_sse

from amplify_auth_client._cache import ValidationCache
from amplify_auth_client._models import SubscriptionState

logger = logging.getLogger("amplify_auth_client.subscription")

EVENTS_PATH: Final = "/auth/events"
#: A stream with no byte for this long is taken for dead: four of the
#: server's default keepalive intervals, two of its longest allowed one.
SILENCE_LIMIT: Final = 60.0
#: Reconnection backoff: full jitter, doubling from the first to the last.
RECONNECT_INITIAL: Final = 0.1
RECONNECT_MAX: Final = 10.0
#: How long closing a client waits for the thread to end.
STOP_TIMEOUT: Final = 5.0


class _Refused(Exception):
    """The server answered the subscription with something other than a stream."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class RevocationSubscription:
    """One client's stream of change events, run by a thread of its own."""

    def __init__(
        self,
        cache: ValidationCache[Any],
        *,
        http_options: dict[str, Any],
        where: str,
    ) -> None:
        self._cache = cache
        self._options = http_options
        self._where = where
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.state: SubscriptionState = "idle"
        #: Id of the last event applied: where a reconnection resumes.
        self.last_event_id: str | None = None
        self.last_event_at: datetime | None = None
        self.events = 0
        self.resets = 0

    @property
    def started(self) -> bool:
        return self._thread is not None or self._stopped

    def start(self) -> None:
        """Start the thread, once; a no-op after :meth:`stop`."""
        with self._mutex:
            if self._thread is not None or self._stopped:
                return
            self.state = "connecting"
            self._thread = threading.Thread(
                target=self._main, name="amplify-auth-revocations", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """End the stream and the thread; the client's cache then lives by its TTLs alone."""
        with self._mutex:
            self._stopped = True
            thread, loop, task = self._thread, self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(task.cancel)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.state = "off"

    def after_fork(self) -> bool:
        """In a forked child: the parent's thread did not come along; start afresh on demand.

        ``last_event_id`` stays: the cache the child inherited is as fresh
        as that event, so the child's stream resumes from it. Returns whether
        the parent's stream was running: then the child must start its own
        with its next answer, a cache hit included.
        """
        running = self._thread is not None and not self._stopped
        self._mutex = threading.Lock()
        self._thread = self._loop = self._task = None
        if not self._stopped:
            self.state = "idle"
        return running

    # -- the thread ----------------------------------------------------------

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception:  # pragma: no cover - _run handles its own errors
            logger.exception("the revocation subscription to %s failed", self._where)
        finally:
            if self.state != "off":
                self.state = "off" if self._stopped else "idle"

    async def _run(self) -> None:
        with self._mutex:
            if self._stopped:
                return
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
        configured: httpx.Timeout = self._options["timeout"]
        options = {
            **self._options,
            # Connect, write and pool as configured; a read may wait as long
            # as the server may stay silent between keepalives.
            "timeout": httpx.Timeout(
                connect=configured.connect,
                read=SILENCE_LIMIT,
                write=configured.write,
                pool=configured.pool,
            ),
        }
        cap = RECONNECT_INITIAL
        with contextlib.suppress(asyncio.CancelledError):
            async with httpx.AsyncClient(**options) as http:
                while True:
                    was_live = await self._listen(http)
                    if was_live:
                        cap = RECONNECT_INITIAL
                    # Full jitter (not crypto: S311 does not apply).
                    wait = random.uniform(0, cap)  # noqa: S311
                    if self.state == "unavailable":
                        # No stream on that server (an older version, or
                        # turned off): ask again now and then, not at once.
                        wait = random.uniform(RECONNECT_MAX / 2, RECONNECT_MAX)  # noqa: S311
                    await asyncio.sleep(wait)
                    cap = min(cap * 2, RECONNECT_MAX)

    async def _listen(self, http: httpx.AsyncClient) -> bool:
        """One connection, until it ends; whether it was live at some point."""
        headers = {} if self.last_event_id is None else {"Last-Event-ID": self.last_event_id}
        live = False
        try:
            async with aconnect_sse(http, "GET", EVENTS_PATH, headers=headers) as source:
                if source.response.status_code != 200:
                    raise _Refused(source.response.status_code)
                async for event in source.aiter_sse():
                    if not event.data:
                        # No event: the SSE standard dispatches none without
                        # data. httpx-sse yields one (an empty "message") at
                        # the blank line after every keepalive comment once
                        # an id was seen, which read as unreadable emptied
                        # the whole cache every EVENTS_KEEPALIVE seconds.
                        continue
                    if event.event == "ready":
                        live = True
                        self.state = "live"
                        logger.info("revocation events from %s: live", self._where)
                    else:
                        self._apply(event.event, event.id, event.data)
            reason = "the server ended the stream"
        except _Refused as exc:
            if exc.status == 404:
                self.state = "unavailable"
                return False
            reason = str(exc)
        except (httpx.HTTPError, SSEError, ValueError) as exc:
            reason = type(exc).__name__
        self.state = "connecting"
        log = logger.warning if live else logger.debug
        log("revocation events from %s: reconnecting (%s)", self._where, reason)
        return live

    def _apply(self, kind: str, event_id: str, data: str) -> None:
        token_hash = None if kind == "reset" else _token_hash(data)
        if token_hash is None:
            # A reset: the server cannot tell what this client missed. Or an
            # event we cannot read: some token changed, we cannot tell which.
            # Either way, trust nothing cached.
            self._cache.clear()
            self.resets += 1
        else:
            self._cache.evict(token_hash)
            self.events += 1
        self.last_event_at = datetime.now(UTC)
        # Only once applied: a reconnection must not skip an event that a
        # crash between receiving and evicting would have lost.
        if event_id:
            self.last_event_id = event_id


def _token_hash(data: str) -> str | None:
    try:
        token_hash = json.loads(data)["token_hash"]
    except (ValueError, KeyError, TypeError):
        return None
    return token_hash if isinstance(token_hash, str) else None
