"""``POST /auth/validate``: the hot path.

The handler reads the body itself and validates it with the pydantic model
in one call, instead of declaring a body parameter: FastAPI's dependency
and serialisation machinery would cost more than the whole validation on a
cache hit. The OpenAPI document still describes both models.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from amplify_auth_server.deps import Services
from amplify_auth_server.errors import InvalidRequest
from amplify_auth_server.routes.errors import field_errors
from amplify_auth_server.schemas import ErrorResponse, ValidateRequest, ValidateResponse

router = APIRouter(tags=["validation"])

_REQUEST_SCHEMA = ValidateRequest.model_json_schema()


@router.post(
    "/auth/validate",
    response_model=ValidateResponse,
    summary="Validate a token and check its scopes",
    responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _REQUEST_SCHEMA}},
        }
    },
)
async def validate(request: Request) -> Response:
    """Always 200 with `valid` and a `reason`, except for a malformed body (422) or
    when neither a cache nor the database can answer (503, never "valid")."""
    try:
        payload = ValidateRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise InvalidRequest(errors=field_errors(exc.errors())) from None
    parts: Services = request.app.state.services
    verdict = await parts.validator.validate(payload.token, payload.required_scopes)
    return Response(verdict.body, media_type="application/json")
