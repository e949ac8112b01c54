"""Token management: create, list, inspect, revoke, extend, and the audit trail.

Every route needs an admin token (:data:`~amplify_auth_server.deps.Admin`).
Writes go through the single writer; reads go straight to the database.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from amplify_auth_client.contract import MAX_AUDIT_LIMIT, is_token_id, token_is_well_formed
from amplify_auth_server.commands import CreateToken, ExtendToken, RevokeToken
from amplify_auth_server.deps import Admin, ServicesDep
from amplify_auth_server.errors import NotFound
from amplify_auth_server.models import utcnow
from amplify_auth_server.schemas import (
    AuditRecordResponse,
    CreatedTokenResponse,
    CreateTokenRequest,
    ErrorResponse,
    ExtendTokenRequest,
    TokenRecordResponse,
)

router = APIRouter(
    prefix="/auth",
    tags=["management"],
    responses={  # shared by every management route
        401: {"model": ErrorResponse, "description": "No valid admin token"},
        403: {"model": ErrorResponse, "description": "Token lacks the admin scope"},
        422: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)

TokenId = Annotated[str, Path(description="The token's id, `tok_…`.", max_length=64)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}}


def _known(token_id: str) -> str:
    # Anything that cannot be an id is a 404 without a query, and is not
    # echoed: it may be a raw token pasted where its id belongs.
    if not is_token_id(token_id):
        if token_is_well_formed(token_id):
            raise NotFound("that is a token, not a token id; token ids look like tok_…")
        raise NotFound("no such token; token ids look like tok_ and 16 letters or digits")
    return token_id


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    summary="Create a token (the raw token is in this response only)",
)
async def create_token(
    body: CreateTokenRequest, admin: Admin, parts: ServicesDep, response: Response
) -> CreatedTokenResponse:
    created = await parts.queue.submit(
        CreateToken(
            actor=admin,
            name=body.name,
            scopes=tuple(dict.fromkeys(body.scopes)),
            ttl_days=body.ttl_days,
            description=body.description,
            metadata=body.metadata,
        )
    )
    # The one response that carries a secret must not be stored by any cache.
    response.headers["Cache-Control"] = "no-store"
    record = created.record
    return CreatedTokenResponse(
        token=created.token,
        token_id=record.id,
        name=record.name,
        scopes=list(record.scopes),
        created_at=record.created_at,
        expires_at=record.expires_at,
        description=record.description,
        metadata=record.metadata,
    )


@router.get("/tokens", summary="List tokens (active only, unless all=true)")
async def list_tokens(
    admin: Admin,
    parts: ServicesDep,
    include_all: Annotated[
        bool, Query(alias="all", description="Include revoked and expired tokens.")
    ] = False,
) -> list[TokenRecordResponse]:
    now = utcnow()
    records = await parts.store.list_records(include_inactive=include_all, now=now)
    return [TokenRecordResponse.of(record, now) for record in records]


@router.get("/tokens/{token_id}", summary="A token's details", responses=_NOT_FOUND)
async def get_token(token_id: TokenId, admin: Admin, parts: ServicesDep) -> TokenRecordResponse:
    record = await parts.store.get(_known(token_id))
    if record is None:
        raise NotFound.token(token_id)
    return TokenRecordResponse.of(record, utcnow())


@router.post(
    "/tokens/{token_id}/revoke",
    summary="Revoke a token now (idempotent)",
    responses=_NOT_FOUND,
)
async def revoke_token(token_id: TokenId, admin: Admin, parts: ServicesDep) -> TokenRecordResponse:
    record = await parts.queue.submit(RevokeToken(actor=admin, token_id=_known(token_id)))
    return TokenRecordResponse.of(record, utcnow())


@router.post(
    "/tokens/{token_id}/extend",
    summary="Push a token's expiry further by some days",
    responses={**_NOT_FOUND, 409: {"model": ErrorResponse}},
)
async def extend_token(
    token_id: TokenId, body: ExtendTokenRequest, admin: Admin, parts: ServicesDep
) -> TokenRecordResponse:
    record = await parts.queue.submit(
        ExtendToken(actor=admin, token_id=_known(token_id), days=body.days)
    )
    return TokenRecordResponse.of(record, utcnow())


@router.get(
    "/tokens/{token_id}/audit",
    summary="A token's audit trail, newest first",
    responses=_NOT_FOUND,
)
async def token_audit(
    token_id: TokenId,
    admin: Admin,
    parts: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_LIMIT)] = 100,
) -> list[AuditRecordResponse]:
    if await parts.store.get(_known(token_id)) is None:
        raise NotFound.token(token_id)
    records = await parts.store.audit(token_id=token_id, limit=limit)
    return [AuditRecordResponse.of(record) for record in records]


@router.get("/audit", summary="The audit log, newest first")
async def audit(
    admin: Admin,
    parts: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_LIMIT)] = 100,
) -> list[AuditRecordResponse]:
    records = await parts.store.audit(token_id=None, limit=limit)
    return [AuditRecordResponse.of(record) for record in records]
