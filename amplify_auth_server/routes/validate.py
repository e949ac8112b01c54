"""``POST /auth/validate``: the hot path, served before FastAPI's router.

Validation is the one request every service makes, so it gets a pure ASGI
fast path (:class:`ValidateFastPath`): read the body, validate it with the
pydantic model in one call, answer with bytes prepared per cache entry.
FastAPI's route dispatch and dependency solving would cost more than the
whole validation on a cache hit (see benchmarks/README.md).

The same handler is also an ordinary FastAPI route, so that the OpenAPI
document describes it and an app mounted without the middleware still
answers; both paths share :func:`answer`.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from amplify_auth_server.deps import Services
from amplify_auth_server.errors import AuthServerError, InvalidRequest
from amplify_auth_server.routes.errors import field_errors, render
from amplify_auth_server.schemas import ErrorResponse, ValidateRequest, ValidateResponse

PATH: Final = "/auth/validate"
router = APIRouter(tags=["validation"])

_JSON: Final = [(b"content-type", b"application/json")]


async def answer(body: bytes, parts: Services) -> bytes:
    """The response body for a validation request; raises our errors for 4xx/5xx."""
    try:
        payload = ValidateRequest.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidRequest(errors=field_errors(exc.errors())) from None
    verdict = await parts.validator.validate(payload.token, payload.required_scopes)
    return verdict.body


@router.post(
    PATH,
    response_model=ValidateResponse,
    summary="Validate a token and check its scopes",
    responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ValidateRequest.model_json_schema()}},
        }
    },
)
async def validate(request: Request) -> Response:
    """Always 200 with `valid` and a `reason`, except for a malformed body (422) or
    when neither a cache nor the database can answer (503, never "valid")."""
    body = await answer(await request.body(), request.app.state.services)
    return Response(body, media_type="application/json")


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
            request = await _read_body(receive)
            if request is None:
                return  # the client hung up
            body = await answer(request, scope["app"].state.services)
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
