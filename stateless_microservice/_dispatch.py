"""An action's request path, and the pure ASGI front that takes it before FastAPI's router.

:func:`endpoint` is the request path of one action: authenticate (the
SDK's :class:`~amplify_auth_client.Authenticator`, nothing else), read the
body, call the handler, render its answer. :class:`ActionFront` calls it
straight from the ASGI scope for every request whose method and path are an
action's, so that an authenticated request costs less than the same
handler in a bare FastAPI app: FastAPI's routing and dependency solving,
not the token check, were what authentication cost a service (a cache hit
is a microsecond; the glue around it was 20-34 % of the throughput).
Anything else (``/docs``, ``/openapi.json``, a ``HEAD``, a wrong method, an
unknown path) goes on to the FastAPI app, whose routes call the same
:func:`endpoint`: one request path, two ways to reach it.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from fastapi.encoders import jsonable_encoder
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from amplify_auth_client import Authenticator, Refusal
from stateless_microservice._action import StatelessAction
from stateless_microservice._errors import ActionError, payload_too_large, refused
from stateless_microservice._identity import ActionRequest, Caller

logger = logging.getLogger("stateless_microservice")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Endpoint = Callable[[Request], Awaitable[Response]]

_PATH_PARAM: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_JSON: Final = "application/json"


@dataclass
class Runtime:
    """What exists only while the app runs: the authenticator of its event loop's client."""

    authenticator: Authenticator | None = None

    async def authenticate(self, request: Request, action: StatelessAction) -> Caller:
        authenticator = self.authenticator
        if authenticator is None:
            raise RuntimeError(
                "the service's auth client is not running: serve the app with its lifespan "
                "(uvicorn does; in tests use `with TestClient(app)` or "
                "stateless_microservice.testing.service_client)"
            )
        found = await authenticator.authenticate_async(
            request.headers.getlist("authorization"), action.policy
        )
        if isinstance(found, Refusal):
            raise refused(found)
        return found


def endpoint(action: StatelessAction, runtime: Runtime, max_body_bytes: int) -> Endpoint:
    """The request path of ``action``: authenticate, read, call, render."""
    handler = cast(Callable[..., Any], action.handler)

    async def answer(request: Request) -> Response:
        try:
            caller = None if action.public else await runtime.authenticate(request, action)
            scope = request.scope
            data = ActionRequest(
                method=scope["method"],
                path=scope["path"],
                path_params=dict(scope.get("path_params") or ()),
                query=dict(request.query_params) if scope["query_string"] else {},
                headers=_headers(request),
                body=await _body(request, max_body_bytes),
            )
            arguments = (data,) if caller is None else (data, caller)
            if action.is_async:
                result = await handler(*arguments)
            else:
                result = await run_in_threadpool(handler, *arguments)
                if inspect.isawaitable(result):  # a plain function that returned a coroutine
                    result = await result
            return render(result)
        except ActionError as error:
            return error_response(error)
        except Exception:
            # Logged with its traceback here, answered without it: a traceback
            # may hold anything the handler had in hand.
            logger.exception("action %s failed", action.name)
            return error_response(
                ActionError(
                    "the service failed to answer; the error is in its log",
                    status_code=500,
                    code="internal_error",
                )
            )

    answer.__name__ = action.name.replace("-", "_").replace(".", "_")
    return answer


class ActionFront:
    """Pure ASGI, in front of the FastAPI app: each action's method and path go straight to
    its :func:`endpoint`; every other request goes on to ``app``."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[tuple[StatelessAction, Endpoint]]) -> None:
        self.app = app
        self._static: dict[tuple[str, str], Endpoint] = {}
        self._dynamic: list[tuple[str, re.Pattern[str], Endpoint]] = []
        for action, answer in routes:
            if action.path_params:
                self._dynamic.append((action.method, _pattern(action.path), answer))
            else:
                self._static[(action.method, action.path)] = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            answer = self._static.get((scope["method"], scope["path"]))
            if answer is None and self._dynamic:
                answer = self._match(scope)
            if answer is not None:
                response = await answer(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _match(self, scope: Scope) -> Endpoint | None:
        method, path = scope["method"], scope["path"]
        for wanted, pattern, answer in self._dynamic:
            if wanted == method and (match := pattern.fullmatch(path)):
                scope["path_params"] = match.groupdict()
                return answer
        return None


def _pattern(path: str) -> re.Pattern[str]:
    """``/items/{item_id}`` as a regex with a named group per parameter (one path segment)."""
    parts = _PATH_PARAM.split(path)  # literal, name, literal, name, ..., literal
    return re.compile(
        "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
    )


def _headers(request: Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        if name == "authorization":
            continue  # never handed to handlers: see _identity's docstring
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise payload_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a chunked body declares no length: count as it comes
            raise payload_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def render(result: Any) -> Response:
    """A handler's answer as a response: as is, 204 for None, else JSON.

    Plain JSON values are encoded directly, as Starlette's JSONResponse would;
    anything else (a dataclass, a datetime, a set) goes through FastAPI's
    encoder first, as before. Both refuse NaN, which JSON has no word for.
    """
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status_code=204)
    try:
        content = _dumps(result)
    except TypeError:
        content = _dumps(jsonable_encoder(result))
    return Response(content, media_type=_JSON)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def error_response(error: ActionError) -> Response:
    return Response(
        _dumps(error.body()), status_code=error.status_code, headers=error.headers, media_type=_JSON
    )
