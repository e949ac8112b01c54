"""Pure ASGI middleware: the validation and create fast paths, a body size cap, no tokens
in URLs, request latency metrics.

Pure ASGI rather than ``BaseHTTPMiddleware``: these wrap every validation,
and the base class costs an extra task and stream per request.
"""

from __future__ import annotations

import time
from typing import Final, NamedTuple
from urllib.parse import parse_qsl, unquote_to_bytes

from fastapi.routing import APIRoute
from prometheus_client import Histogram
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amplify_auth_client.contract import IDEMPOTENCY_KEY_HEADER, TOKEN_PREFIX, is_idempotency_key
from amplify_auth_server.bodies import PARSED
from amplify_auth_server.deps import check_query, require_admin
from amplify_auth_server.errors import AuthServerError, TokenInUrl, render
from amplify_auth_server.routes import errors, tokens
from amplify_auth_server.routes.validate import PATH, answer
from amplify_auth_server.schemas import CreateTokenRequest

_JSON: Final = [(b"content-type", b"application/json")]


class BodySizeLimit:
    """Refuse bodies over ``max_bytes`` before reading them into memory.

    A declared ``Content-Length`` over the cap is refused at once; a chunked
    body is counted as it arrives and refused at the first byte too many.

    Not FastAPI's ``max_body_size``: that one answers a declared-too-long
    body with its own plain-text 413 in place of whatever the app sends,
    and every error of this API is JSON in one shape.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
                # Trust the declared length: the server enforces it.
                await self.app(scope, receive, send)
                return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException, which FastAPI lets through its body
                    # parsing (anything else becomes a 400 there).
                    raise HTTPException(413, self._detail)
            return message

        return counted

    @property
    def _detail(self) -> str:
        return f"request body over {self.max_bytes} bytes"

    async def _refuse(self, send: Send) -> None:
        status, body, _ = render(HTTPException(413, self._detail))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class NoTokensInUrls:
    """Refuse, with 400, a request whose query string holds a token (RFC 6750 section 5.3).

    ``?token=amp_live_...`` puts the secret in every access log, proxy log
    and browser history on its way; the API never takes one there, so it is
    refused before anything else looks at it, rather than ignored as an
    unknown parameter. (A token pasted into a path gets the 404 of an id
    that is not one, and is redacted from the access log: see ``logs``.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["query_string"] and _holds_token(scope):
            status, body, _ = render(TokenInUrl())
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [*_JSON, (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _holds_token(scope: Scope) -> bool:
    query: bytes = scope["query_string"]
    if b"%" in query:
        query = unquote_to_bytes(query)
    return TOKEN_PREFIX.encode() in query


class RequestLatency:
    """Observe each request's duration under its route template, not its path.

    Route templates keep the label set small (``/auth/tokens/{token_id}``,
    not one series per token id).
    """

    def __init__(
        self, app: ASGIApp, *, histogram: Histogram, streams: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.histogram = histogram
        self.streams = streams
        self._children: dict[tuple[str, str], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            # Unmatched requests share one series whatever their method or
            # path, so that a scanner cannot mint label values.
            key = ("*", "unmatched") if route is None else (scope["method"], route.path)
            # A stream lasts as long as its subscriber: not a latency.
            if key[1] not in self.streams:
                self._observe(key, time.perf_counter() - started)

    def _observe(self, key: tuple[str, str], seconds: float) -> None:
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.histogram.labels(*key)
        child.observe(seconds)


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class _Route(NamedTuple):
    path: str


_ROUTE: Final = _Route(PATH)


class ValidateFastPath:
    """Answer ``POST /auth/validate`` directly; pass everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        # Read by RequestLatency, as it would read the matched route.
        scope["route"] = _ROUTE
        try:
            if scope["query_string"]:
                # It takes none; answered here, before the app's check could run.
                query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
                check_query(query, {})
            request = await _read_body(receive)
            if request is None:
                return  # the client hung up
            content_type = next((v for k, v in scope["headers"] if k == b"content-type"), None)
            body = await answer(request, content_type, scope["app"].state.services, scope)
            status, headers = 200, _JSON
        except (AuthServerError, HTTPException) as exc:
            # Ours, and the body limit's 413: what the route's handlers send.
            status, body, extra = render(exc)
            headers = _JSON + [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


_IDEMPOTENCY_KEY: Final = IDEMPOTENCY_KEY_HEADER.lower().encode()


class CreateFastPath:
    """Answer a well-formed ``POST /auth/tokens`` through the route's own steps, without
    FastAPI's router and dependency machinery; pass everything else on.

    Fleets mint in bursts, and under load a third of a create was Starlette
    and FastAPI looking up the route, solving its dependencies and
    rendering its answer. Taken here: a create with no query, a body that
    :class:`~amplify_auth_server.bodies.JsonBodies` (just outside) parsed and
    the request model accepts, and no ``Idempotency-Key`` or a well-formed
    one. It runs the very functions the route runs (the admin check, the
    create, the API's handler for what they raise), so the answer, the
    audit of a refusal and the latency label are the route's. Anything
    else, every input error included, goes the route's way, whose answers
    the fast path therefore never has to copy.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route = next(
            r
            for r in tokens.router.routes
            if isinstance(r, APIRoute) and r.endpoint is tokens.create_token
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != self._route.path
            or scope["method"] != "POST"
            or scope["query_string"]
            or PARSED not in scope
        ):
            await self.app(scope, receive, send)
            return
        try:
            body = CreateTokenRequest.model_validate(scope[PARSED])
        except ValidationError:
            await self.app(scope, receive, send)
            return
        key = next((v for k, v in scope["headers"] if k == _IDEMPOTENCY_KEY), None)
        idempotency_key = None if key is None else key.decode("latin-1")
        if idempotency_key is not None and not is_idempotency_key(idempotency_key):
            await self.app(scope, receive, send)
            return
        # What the router would have set: the latency label, a refusal's audit.
        scope["route"] = self._route
        scope["endpoint"] = self._route.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive)
        parts = scope["app"].state.services
        response: Response
        try:
            admin = await require_admin(request, parts)
            response = await tokens.create(body, admin, parts, idempotency_key)
        except AuthServerError as exc:
            response = await errors.handle(request, exc)
        await response(scope, receive, send)
