"""How errors reach the wire: one JSON shape, and never the caller's input.

FastAPI's default 422 body echoes each invalid value back; for a token
field that would put a secret in a response (and in any log that records
responses), so only the location, message and type are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from amplify_auth_server.errors import AuthServerError, InvalidRequest

logger = logging.getLogger("amplify_auth_server")

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "loc": [str(p) if not isinstance(p, int) else p for p in e["loc"]],
            "msg": e["msg"],
            "type": e["type"],
        }
        for e in errors
    ]


def render(exc: AuthServerError | HTTPException) -> tuple[int, bytes, dict[str, str]]:
    """Status, JSON body and headers of an error: ours, or Starlette's own
    (unknown route, wrong method, body too large) put in our shape."""
    if isinstance(exc, AuthServerError):
        return exc.status_code, exc.json(), exc.headers
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    body = orjson.dumps({"error": code, "detail": str(exc.detail)})
    return exc.status_code, body, dict(exc.headers or {})


def _respond(exc: AuthServerError | HTTPException) -> Response:
    status, body, headers = render(exc)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


async def _ours(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthServerError)
    return _respond(exc)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail = None
    content_type = request.headers.get("content-type", "")
    if request.method in ("POST", "PUT", "PATCH") and "json" not in content_type:
        # FastAPI reads a body as JSON only when it is labelled so; say that,
        # rather than "Input should be a valid dictionary".
        detail = "send the body as JSON, with Content-Type: application/json"
    return _respond(InvalidRequest(detail, errors=field_errors(exc.errors())))


async def _http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _respond(exc)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return JSONResponse(
        {"error": "internal_error", "detail": "internal error; the server log has the details"},
        status_code=500,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(AuthServerError, _ours)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
