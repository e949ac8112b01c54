"""``POST /auth/validate``: the hot path.

Validation is the one request every service makes, so it is answered by a
pure ASGI fast path before FastAPI's router
(:class:`~amplify_auth_server.middleware.ValidateFastPath`): FastAPI's route
dispatch and dependency solving would cost more than the whole validation
on a cache hit (see benchmarks/README.md).

The same handler is also an ordinary FastAPI route here, so that the
OpenAPI document describes it and an app mounted without the middleware
still answers; both paths share :func:`answer`.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.types import Scope

from amplify_auth_server.bodies import check, require_json
from amplify_auth_server.deps import Services
from amplify_auth_server.errors import InvalidInput, field_errors
from amplify_auth_server.schemas import ErrorResponse, ValidateRequest, ValidateResponse
from amplify_auth_server.throttle import FAILED_VALIDATIONS, client_of

PATH: Final = "/auth/validate"
router = APIRouter(tags=["validation"])
#: The only names an error's location may show (see errors.field_errors).
_FIELDS: Final = frozenset(ValidateRequest.model_fields)


async def answer(body: bytes, content_type: bytes | None, parts: Services, scope: Scope) -> bytes:
    """The response body for a validation request; raises our errors for 4xx/5xx.

    The body is held to :mod:`amplify_auth_server.bodies`'s rules here, as
    this path answers before the middleware that applies them elsewhere.
    A failed validation counts against the client's budget (429 past it:
    :mod:`amplify_auth_server.throttle`); a valid one costs one dict lookup more.
    """
    require_json(content_type)
    try:
        payload = ValidateRequest.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidInput(errors=field_errors(exc.errors(), _FIELDS)) from None
    check(body, len(payload.model_fields_set))
    verdict = await parts.validator.validate(payload.token, payload.required_scopes)
    kind = FAILED_VALIDATIONS.get(verdict.result)
    if kind is not None:
        await parts.throttle.failed(kind, client_of(scope))
    return verdict.body


@router.post(
    PATH,
    response_model=ValidateResponse,
    summary="Validate a token and check its scopes",
    responses={
        413: {"model": ErrorResponse},
        415: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        429: {"model": ErrorResponse, "description": "Too many failed validations"},
        503: {"model": ErrorResponse},
    },
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
    content_type = request.headers.get("content-type")
    body = await answer(
        await request.body(),
        None if content_type is None else content_type.encode("latin-1"),
        request.app.state.services,
        request.scope,
    )
    return Response(body, media_type="application/json")
