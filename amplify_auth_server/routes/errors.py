"""The app's exception handlers: every error in one JSON shape, never the caller's input.

The shape itself is :func:`amplify_auth_server.errors.render`'s.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from amplify_auth_client.contract import IDEMPOTENCY_KEY_HEADER, MAX_IDEMPOTENCY_KEY_LENGTH
from amplify_auth_server.deps import audit_refusal
from amplify_auth_server.errors import (
    AuthServerError,
    InvalidInput,
    field_errors,
    known_names,
    render,
)

logger = logging.getLogger("amplify_auth_server")


def _respond(exc: AuthServerError | HTTPException) -> Response:
    status, body, headers = render(exc)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


async def handle(request: Request, exc: Exception) -> Response:
    """The answer to one of our errors, audited first when it refused a manager: the
    app's handler, and the create fast path's."""
    assert isinstance(exc, AuthServerError)
    await audit_refusal(request, exc)
    return _respond(exc)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail = None
    content_type = request.headers.get("content-type", "")
    if request.method in ("POST", "PUT", "PATCH") and "json" not in content_type:
        # FastAPI reads a body as JSON only when it is labelled so; say that,
        # rather than "Input should be a valid dictionary".
        detail = "send the body as JSON, with Content-Type: application/json"
    errors = field_errors(exc.errors(), known_names(request.app))
    if errors and all(e["loc"][:2] == ["header", IDEMPOTENCY_KEY_HEADER] for e in errors):
        detail = (
            f"{IDEMPOTENCY_KEY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII "
            "characters, without spaces (a UUID, say); leave it out to create without one"
        )
    return _respond(InvalidInput(detail, errors=errors))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        # Starlette's Allow names the methods of the first route on the path
        # only; the path may have several (GET and POST /auth/tokens).
        exc = HTTPException(405, exc.detail, headers={"Allow": ", ".join(_allowed(request))})
    return _respond(exc)


def _allowed(request: Request) -> list[str]:
    """The methods the API serves at the request's path, from its OpenAPI document."""
    paths: list[tuple[re.Pattern[str], list[str]]] | None = getattr(
        request.app.state, "path_methods", None
    )
    if paths is None:
        document = request.app.openapi()
        paths = request.app.state.path_methods = [
            (_template(path), [method.upper() for method in operations])
            for path, operations in document.get("paths", {}).items()
        ]
    path = request.url.path
    return sorted({m for pattern, methods in paths if pattern.fullmatch(path) for m in methods})


def _template(path: str) -> re.Pattern[str]:
    # "/auth/tokens/{token_id}": any one segment where the parameter is.
    return re.compile("[^/]+".join(map(re.escape, re.split(r"\{[^/]+?\}", path))))


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return JSONResponse(
        {"error": "internal_error", "detail": "internal error; the server log has the details"},
        status_code=500,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(AuthServerError, handle)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
