"""Token management: create, list, inspect, revoke, extend, rotate, and the audit trail.

Every route needs a manager's token (:data:`~amplify_auth_server.deps.Admin`):
a global admin, or a delegated admin limited to its owner's tokens, as
:mod:`amplify_auth_server.authz` decides. Writes go through the single
writer; reads go straight to the database.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Response, status
from pydantic import AwareDatetime, BeforeValidator

from amplify_auth_client.contract import (
    DEFAULT_PAGE_SIZE,
    IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENCY_KEY_PATTERN,
    IDEMPOTENCY_WINDOW,
    IDEMPOTENT_REPLAYED_HEADER,
    MAX_BULK_IDS,
    MAX_CURSOR_LENGTH,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_PAGE_SIZE,
    MAX_TTL_DAYS,
    TOKEN_ID,
    USAGE_DAYS,
    USAGE_REPORT_INTERVAL,
    ListStatus,
    create_fingerprint,
    hash_idempotency_key,
    is_token_id,
    rotate_fingerprint,
    token_is_well_formed,
)
from amplify_auth_server import authz
from amplify_auth_server.commands import (
    CreateToken,
    ExtendToken,
    Idempotency,
    RecordRefusal,
    RevokeMany,
    RevokeToken,
    RotateToken,
)
from amplify_auth_server.config import Settings
from amplify_auth_server.deps import Admin, Services, ServicesDep
from amplify_auth_server.errors import Conflict, InvalidInput, NotFound
from amplify_auth_server.models import Actor, utcnow
from amplify_auth_server.pages import AuditFilter, TokenFilter
from amplify_auth_server.schemas import (
    AuditPageResponse,
    AuditRecordResponse,
    BulkRevokeRequest,
    BulkRevokeResponse,
    CreatedTokenResponse,
    CreateTokenRequest,
    ErrorResponse,
    ExtendTokenRequest,
    NamePrefix,
    Owner,
    RevokeByIds,
    RotatedTokenResponse,
    RotateTokenRequest,
    Scope,
    TokenDetailResponse,
    TokenPageResponse,
    TokenRecordResponse,
    UsageDay,
)

router = APIRouter(
    prefix="/auth",
    tags=["management"],
    responses={  # shared by every management route
        401: {"model": ErrorResponse, "description": "No valid admin token"},
        403: {
            "model": ErrorResponse,
            "description": "The token lacks `admin` and `tokens:manage` (`forbidden`), or a "
            "delegated admin asked beyond its delegation: another owner (`other_owner`), a "
            "scope it does not hold (`scope_not_held`), an expiry past its own "
            "(`expires_after_manager`)",
        },
        429: {"model": ErrorResponse, "description": "Too many failed admin authentications"},
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


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_KEY_HEADER,
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Makes the create safe to retry: the same key (from the same admin "
        f"token, within {IDEMPOTENCY_WINDOW.days * 24} hours) with the same body answers "
        "the first create's token again, with `token: null`, status 200 and "
        f"`{IDEMPOTENT_REPLAYED_HEADER}: true`, and mints nothing; with another body, 422. "
        f"1 to {MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters; kept by hash only.",
    ),
]


RotationKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_KEY_HEADER,
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Makes the rotation safe to retry, as a create's key does: the same key "
        f"(from the same admin token, within {IDEMPOTENCY_WINDOW.days * 24} hours) with the "
        "same token and body answers that rotation again, with `token: null`, status 200 and "
        f"`{IDEMPOTENT_REPLAYED_HEADER}: true`; with another body, 422. Creates and rotations "
        "share the keys: one key names one of them.",
    ),
]


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedTokenResponse,
    summary="Create a token (the raw token is in this response only)",
    responses={
        200: {
            "model": CreatedTokenResponse,
            "description": "A replay of the create its `Idempotency-Key` named: no raw token",
        }
    },
)
async def create_token(
    body: CreateTokenRequest,
    admin: Admin,
    parts: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await create(body, admin, parts, idempotency_key)


async def create(
    body: CreateTokenRequest, admin: Actor, parts: Services, idempotency_key: str | None
) -> Response:
    """The create, answered: the route's and the create fast path's
    (:class:`~amplify_auth_server.middleware.CreateFastPath`), so both send the same bytes.

    Rendered here rather than by FastAPI's response model, which the fast
    path does not run; the route declares the model for its schema.
    """
    answer, replayed = await mint(body, admin, parts, idempotency_key)
    # The one response that carries a secret must not be stored by any cache.
    headers = {"Cache-Control": "no-store"}
    if replayed:
        headers[IDEMPOTENT_REPLAYED_HEADER] = "true"
    return Response(
        answer.model_dump_json(),
        status_code=status.HTTP_200_OK if replayed else status.HTTP_201_CREATED,
        headers=headers,
        media_type="application/json",
    )


async def mint(
    body: CreateTokenRequest, admin: Actor, parts: Services, idempotency_key: str | None
) -> tuple[CreatedTokenResponse, bool]:
    """The token ``admin`` asked for (the console's create too), and whether it is a
    replay of an earlier create with the same ``idempotency_key``."""
    grant = authz.may_create(
        admin, owner=body.owner, scopes=body.scopes, ttl_days=body.ttl_days, now=utcnow()
    )
    idempotency = None
    if idempotency_key is not None:
        idempotency = Idempotency(
            key_hash=hash_idempotency_key(idempotency_key),
            body_hash=create_fingerprint(
                body.name,
                body.scopes,
                body.ttl_days,
                body.description,
                body.metadata,
                body.owner,
            ),
        )
    created = await parts.queue.submit(
        CreateToken(
            actor=admin,
            name=body.name,
            scopes=tuple(dict.fromkeys(body.scopes)),
            ttl_days=body.ttl_days,
            description=body.description,
            metadata=body.metadata,
            idempotency=idempotency,
            owner=grant.owner,
            not_after=grant.not_after,
        )
    )
    record = created.record
    answer = CreatedTokenResponse(
        token=created.token,
        token_id=record.id,
        name=record.name,
        scopes=list(record.scopes),
        created_at=record.created_at,
        expires_at=record.expires_at,
        description=record.description,
        metadata=record.metadata,
        owner=record.owner,
    )
    return answer, created.replayed


Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Rows per page, newest first.")]
Cursor = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_CURSOR_LENGTH,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The `next_cursor` of the previous page, with the same filters.",
    ),
]


@router.get("/tokens", summary="List tokens, a page at a time, newest first")
async def list_tokens(
    admin: Admin,
    parts: ServicesDep,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
    status: Annotated[
        ListStatus | None, Query(description="Which tokens by state; `active` by default.")
    ] = None,
    include_all: Annotated[
        bool, Query(alias="all", description="The same as `status=all` (the seed's form).")
    ] = False,
    name: Annotated[
        NamePrefix | None, Query(description="Tokens whose name starts so, whatever its case.")
    ] = None,
    scope: Annotated[Scope | None, Query(description="Tokens holding this scope.")] = None,
    expires_within_days: Annotated[
        int | None,
        Query(ge=0, le=MAX_TTL_DAYS, description="Tokens expiring within this many days."),
    ] = None,
    owner: Annotated[
        Owner | None,
        Query(description="Tokens of this owner (a delegated admin lists only its own)."),
    ] = None,
    unused_for_days: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_TTL_DAYS,
            description="Tokens not used for this many days (never used counts as unused).",
        ),
    ] = None,
    used_within_days: Annotated[
        int | None,
        Query(ge=1, le=MAX_TTL_DAYS, description="Tokens used within this many days."),
    ] = None,
) -> TokenPageResponse:
    if include_all and status not in (None, "all"):
        raise InvalidInput(
            f"all=true means status=all, and status={status} was given too: send one of them",
            errors=[
                {"loc": ["query", "all"], "msg": "Conflicts with status", "type": "value_error"}
            ],
        )
    filters = TokenFilter(
        status="all" if include_all else status or "active",
        name=name,
        scope=scope,
        expires_within_days=expires_within_days,
        owner=authz.may_list(admin, owner),
        unused_for_days=unused_for_days,
        used_within_days=used_within_days,
    )
    after = None if cursor is None else parts.cursors.token_position(cursor, filters)
    now = utcnow()
    records = await parts.store.token_page(filters, after=after, limit=limit + 1, now=now)
    more = len(records) > limit
    records = records[:limit]
    next_cursor = None
    if more:
        last = records[-1]
        next_cursor = parts.cursors.tokens((last.created_at, last.id), filters)
    return TokenPageResponse(
        items=[TokenRecordResponse.of(record, now) for record in records], next_cursor=next_cursor
    )


@router.post(
    "/tokens/revoke",
    summary="Revoke many tokens: by id, or every active one matching filters",
)
async def revoke_tokens(
    body: Annotated[BulkRevokeRequest, Body()], admin: Admin, parts: ServicesDep
) -> BulkRevokeResponse:
    """Every token is refused everywhere once this returns, as after a single revoke.
    By id: which were revoked now, which were already, which are no token. By
    filters: how many were revoked (or would be, with `dry_run`)."""
    if isinstance(body, RevokeByIds):
        done = await parts.queue.submit(RevokeMany(actor=admin, token_ids=tuple(body.token_ids)))
        if authz.scope_of(admin) is not None:
            # To a delegated admin, each is an id of no token or of another
            # owner's: audited as the 404 of a single revoke would be.
            await asyncio.gather(
                *(
                    parts.queue.submit(
                        RecordRefusal(
                            actor=admin,
                            attempt="revoke_tokens",
                            token_id=token_id,
                            status=404,
                            error="not_found",
                        )
                    )
                    for token_id in done.not_found
                )
            )
        return BulkRevokeResponse(
            revoked_count=len(done.revoked),
            revoked=list(done.revoked),
            already_revoked=list(done.already_revoked),
            not_found=list(done.not_found),
        )
    filters = TokenFilter(
        status="active",
        name=body.filter.name,
        scope=body.filter.scope,
        expires_within_days=body.filter.expires_within_days,
        owner=authz.may_list(admin, body.filter.owner),
        unused_for_days=body.filter.unused_for_days,
        used_within_days=body.filter.used_within_days,
    )
    ids = await parts.store.matching_ids(filters, utcnow())
    if body.dry_run:
        return BulkRevokeResponse(
            revoked_count=len(ids), revoked=None, already_revoked=None, not_found=None
        )
    chunks = [tuple(ids[i : i + MAX_BULK_IDS]) for i in range(0, len(ids), MAX_BULK_IDS)]
    # All queued at once: the writer takes them as few batches.
    results = await asyncio.gather(
        *(parts.queue.submit(RevokeMany(actor=admin, token_ids=chunk)) for chunk in chunks)
    )
    count = sum(len(result.revoked) for result in results)
    return BulkRevokeResponse(
        revoked_count=count, revoked=None, already_revoked=None, not_found=None
    )


@router.get("/tokens/{token_id}", summary="A token's details and its usage", responses=_NOT_FOUND)
async def get_token(token_id: TokenId, admin: Admin, parts: ServicesDep) -> TokenDetailResponse:
    record = authz.visible(admin, await parts.store.get(_known(token_id)))
    if record is None:
        raise NotFound.token(token_id)
    now = utcnow()
    days = await parts.store.usage_of(record.id, (now - timedelta(days=USAGE_DAYS - 1)).date())
    return TokenDetailResponse(
        **TokenRecordResponse.of(record, now).model_dump(),
        usage=[UsageDay(day=day, count=count) for day, count in days],
    )


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


def _can_tell_idle(settings: Settings, idle: int) -> None:
    """Refuse an idle limit this server could not honour without ending the grace of a
    token still in use: with usage counting off, nothing tells it a token is used;
    with a limit no longer than a use may take to reach ``last_used_at`` (an SDK's
    report interval, then this server's flush), a busy token would look idle."""
    if not settings.usage_counting:
        raise Conflict(
            "finish_when_idle_seconds needs usage counting, which is off on this server "
            "(USAGE_COUNTING=false): nothing would tell it that the old token is still used"
        )
    lag = USAGE_REPORT_INTERVAL + settings.usage_flush_seconds
    if idle <= lag:
        raise InvalidInput(
            f"finish_when_idle_seconds must exceed {lag:g}: a use reaches last_used_at up "
            f"to an SDK's report interval ({USAGE_REPORT_INTERVAL:g} s) and this server's "
            f"flush (USAGE_FLUSH_SECONDS={settings.usage_flush_seconds:g}) after it happens",
            errors=[
                {
                    "loc": ["body", "finish_when_idle_seconds"],
                    "msg": f"Input should be greater than {lag:g}",
                    "type": "greater_than",
                }
            ],
        )


@router.post(
    "/tokens/{token_id}/rotate",
    status_code=status.HTTP_201_CREATED,
    summary="Replace a token by a new one; the old one works for a grace period",
    responses={
        **_NOT_FOUND,
        200: {
            "model": RotatedTokenResponse,
            "description": "A replay of the rotation its `Idempotency-Key` named: no raw token",
        },
        409: {
            "model": ErrorResponse,
            "description": "The token is revoked, expired, or already rotated",
        },
    },
)
async def rotate_token(
    token_id: TokenId,
    body: RotateTokenRequest,
    admin: Admin,
    parts: ServicesDep,
    response: Response,
    idempotency_key: RotationKey = None,
) -> RotatedTokenResponse:
    """The new token (raw, shown once) with the old one's name, scopes, owner,
    description, metadata and lifetime; the old one stays valid until
    `grace_seconds` from now (or its own expiry, if sooner), answers
    `replaced_by` meanwhile, and is then refused as expired. A grace of 0
    revokes it now."""
    token_id = _known(token_id)
    if body.finish_when_idle_seconds is not None:
        _can_tell_idle(parts.settings, body.finish_when_idle_seconds)
    idempotency = None
    if idempotency_key is not None:
        idempotency = Idempotency(
            key_hash=hash_idempotency_key(idempotency_key),
            body_hash=rotate_fingerprint(
                token_id, body.grace_seconds, body.finish_when_idle_seconds
            ),
        )
    rotated = await parts.queue.submit(
        RotateToken(
            actor=admin,
            token_id=token_id,
            grace_seconds=body.grace_seconds,
            finish_when_idle_seconds=body.finish_when_idle_seconds,
            idempotency=idempotency,
        )
    )
    # As a create's: the one other response that carries a secret.
    response.headers["Cache-Control"] = "no-store"
    if rotated.minted.replayed:
        response.status_code = status.HTTP_200_OK
        response.headers[IDEMPOTENT_REPLAYED_HEADER] = "true"
    record, now = rotated.minted.record, utcnow()
    return RotatedTokenResponse(
        token=rotated.minted.token,
        token_id=record.id,
        name=record.name,
        scopes=list(record.scopes),
        created_at=record.created_at,
        expires_at=record.expires_at,
        description=record.description,
        metadata=record.metadata,
        owner=record.owner,
        rotated_from=rotated.previous.id,
        previous=TokenRecordResponse.of(rotated.previous, now),
    )


Action = Annotated[
    str | None,
    Query(pattern=r"^[a-z_]{1,32}$", description="Entries of this action (`create`, `revoke`...)."),
]
ActorId = Annotated[
    str | None,
    Query(
        pattern=rf"^(system|anonymous|{TOKEN_ID.pattern})$",
        description="Entries caused by this token id, `system`, or `anonymous` (a failed "
        "admin authentication with no known token).",
    ),
]


def _text_only(value: object) -> object:
    # A query value is text; pydantic would also read a bare number as a time.
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "").isdigit():
        raise ValueError("a time in ISO 8601, with its zone: 2026-12-01T10:00:00Z")
    return value


Since = Annotated[
    AwareDatetime | None,
    BeforeValidator(_text_only),
    Query(description="Entries at or after this time (ISO 8601, with its zone)."),
]
Until = Annotated[
    AwareDatetime | None,
    BeforeValidator(_text_only),
    Query(description="Entries before this time (ISO 8601, with its zone)."),
]


async def _audit_page(
    parts: ServicesDep, filters: AuditFilter, cursor: str | None, limit: int
) -> AuditPageResponse:
    after = None if cursor is None else parts.cursors.audit_position(cursor, filters)
    records = await parts.store.audit_page(filters, after=after, limit=limit + 1)
    next_cursor = None
    if len(records) > limit:
        records = records[:limit]
        next_cursor = parts.cursors.audit(records[-1].id, filters)
    return AuditPageResponse(
        items=[AuditRecordResponse.of(record) for record in records], next_cursor=next_cursor
    )


@router.get(
    "/tokens/{token_id}/audit",
    summary="A token's audit trail, a page at a time, newest first",
    responses=_NOT_FOUND,
)
async def token_audit(
    token_id: TokenId,
    admin: Admin,
    parts: ServicesDep,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
    action: Action = None,
    actor: ActorId = None,
    since: Since = None,
    until: Until = None,
) -> AuditPageResponse:
    if authz.visible(admin, await parts.store.get(_known(token_id))) is None:
        raise NotFound.token(token_id)
    filters = AuditFilter(
        token_id=token_id,
        action=action,
        actor=actor,
        since=since,
        until=until,
        owner=authz.scope_of(admin),
    )
    return await _audit_page(parts, filters, cursor, limit)


@router.get(
    "/audit",
    summary="The audit log, a page at a time, newest first (a delegated admin: its owner's)",
)
async def audit(
    admin: Admin,
    parts: ServicesDep,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
    action: Action = None,
    actor: ActorId = None,
    since: Since = None,
    until: Until = None,
) -> AuditPageResponse:
    # A delegated admin's audit log is its owner's entries only.
    filters = AuditFilter(
        action=action, actor=actor, since=since, until=until, owner=authz.scope_of(admin)
    )
    return await _audit_page(parts, filters, cursor, limit)
