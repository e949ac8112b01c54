"""``GET /auth/events``: token changes as Server-Sent Events, for SDK caches to evict.

The stream, in order:

1. ``event: reset`` (with the id to resume from) when the subscriber must
   drop its whole cache: it sent no ``Last-Event-ID``, or one the log no
   longer leads on from. Otherwise, the events it missed.
2. ``event: ready``, whose data gives the keepalive interval: from here on,
   every change is delivered as it is committed.
3. ``event: revoked`` / ``extended`` / ``registered`` / ``rotated``, each with an ``id``
   and ``{"token_hash": …, "version": …}``; a ``: keepalive`` comment when
   nothing happened for ``EVENTS_KEEPALIVE`` seconds, so that idle proxies
   keep the connection, and the subscriber can tell a quiet stream from a
   dead one.

The stream ends when this server can no longer promise every change (Redis
stopped answering), when the subscriber falls too far behind, and when the
server stops; the subscriber reconnects with its last id and catches up.

Who may subscribe: anyone who may call ``/auth/validate``, which needs no
credentials either. An event tells only that the token with some SHA-256
changed: no id, name or scopes, and a hash cannot be turned back into a
token (see docs/security.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Header
from fastapi.sse import format_sse_event
from starlette.responses import StreamingResponse

from amplify_auth_server.deps import ServicesDep
from amplify_auth_server.errors import NotFound
from amplify_auth_server.events import Subscriber, TokenEvent
from amplify_auth_server.schemas import ErrorResponse

EVENTS_PATH: Final = "/auth/events"

router = APIRouter(prefix="/auth", tags=["validation"])


async def subscription(
    parts: ServicesDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=128,
            description="The id of the last event received, to resume after it.",
        ),
    ] = None,
) -> AsyncIterator[Subscriber]:
    # A dependency, not the generator's first step: a refusal must be a 503
    # before the stream starts, not an error in the middle of a 200.
    if parts.settings.events_max_subscribers == 0:
        raise NotFound("the event stream is turned off on this server (EVENTS_MAX_SUBSCRIBERS=0)")
    subscribed = await parts.events.subscribe(last_event_id)
    try:
        yield subscribed
    finally:
        parts.events.unsubscribe(subscribed)


#: The most events written at once: a bulk revocation's thousands go out a few
#: hundred to a write, and a lone change at once (see :func:`stream`).
CHUNK: Final = 256
_KEEPALIVE: Final = format_sse_event(comment="keepalive")


class EventStream(StreamingResponse):
    """The stream's response: Server-Sent Events, never stored by a cache or a
    proxy's buffer (``X-Accel-Buffering`` for nginx)."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes]) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _event(event: TokenEvent) -> bytes:
    return format_sse_event(event=event.change, id=event.id, data_str=event.data())


def _events(events: Sequence[TokenEvent]) -> bytes:
    return b"".join(_event(event) for event in events)


def _raw(data: dict[str, Any]) -> str:
    return orjson.dumps(data).decode()


@router.get(
    "/events",
    response_class=EventStream,
    status_code=200,
    summary="Stream token changes (Server-Sent Events)",
    responses={
        200: {
            "description": "The event stream: `reset` or the missed events, `ready`, then "
            "every change as it commits."
        },
        422: {"model": ErrorResponse},
        404: {"model": ErrorResponse, "description": "The stream is turned off"},
        503: {"model": ErrorResponse, "description": "Too many subscribers, or Redis is down"},
    },
)
async def events(
    parts: ServicesDep, subscribed: Annotated[Subscriber, Depends(subscription)]
) -> EventStream:
    """Every revoke and extend, as it commits, for caches to evict the token's entry."""
    return EventStream(stream(subscribed, parts.settings.events_keepalive))


async def stream(subscribed: Subscriber, keepalive: float) -> AsyncIterator[bytes]:
    """The stream's bytes: every event waiting when one is written goes in the same
    write, up to :data:`CHUNK`.

    One write per event (FastAPI's own SSE response, before) cost a bulk
    revocation of 10,000 tokens half a second per subscriber between the
    call's return and the last eviction. An event is never held back for
    company: whatever is queued goes at once.
    """
    if subscribed.reset:
        yield format_sse_event(event="reset", id=subscribed.head, data_str=_raw({}))
    backlog = subscribed.backlog
    for start in range(0, len(backlog), CHUNK):
        yield _events(backlog[start : start + CHUNK])
    yield format_sse_event(event="ready", data_str=_raw({"keepalive": keepalive}))
    queue = subscribed.queue
    while True:
        try:
            async with asyncio.timeout(keepalive):
                event = await queue.get()
        except TimeoutError:
            yield _KEEPALIVE
            continue
        ready: list[TokenEvent] = []
        while event is not None:
            ready.append(event)
            if len(ready) == CHUNK or queue.empty():
                break
            event = queue.get_nowait()
        if ready:
            yield _events(ready)
        if event is None:
            return
