"""``POST /auth/usage``: an SDK's cache hits, reported in bulk.

No admin token: the services that validate tokens usually hold none. A
report names tokens by hash, which the API never shows, and only makes a
token that is valid now look used, now (see
:class:`~amplify_auth_server.usage.UsageReports` and docs/security.md).
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request, Response, status

from amplify_auth_server.deps import ServicesDep
from amplify_auth_server.schemas import ErrorResponse, UsageReport
from amplify_auth_server.throttle import client_of

PATH: Final = "/auth/usage"
router = APIRouter(tags=["validation"])


@router.post(
    PATH,
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Report an SDK's cache hits since its last report",
    responses={
        413: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        429: {"model": ErrorResponse, "description": "Too many unknown token hashes"},
        503: {"model": ErrorResponse},
    },
)
async def report_usage(body: UsageReport, request: Request, parts: ServicesDep) -> Response:
    """204 whatever was counted: hashes of unknown, revoked or expired tokens are
    ignored (an unknown one counts as a failed validation of the client)."""
    if parts.settings.usage_counting:
        await parts.usage.accept(
            [(hit.token_hash, hit.count) for hit in body.hits], client_of(request.scope)
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
