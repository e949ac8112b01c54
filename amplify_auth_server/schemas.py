"""Every request and response body of the HTTP API, as pydantic models.

The limits and grammars are the contract's
(:mod:`amplify_auth_client.contract`), which the SDK, its fake server and
``stateless_microservice`` read too. Every rule is in the OpenAPI document
(patterns, lengths, ``uniqueItems``), and every value is taken as sent or
refused, never normalised: integers are strict (no ``true``, ``"5"`` or
``5.0``), names are not trimmed, scopes not deduplicated. Text fields refuse
control characters: PostgreSQL cannot store a NUL, and such a string must
be a 422 at the door, not a 500 in the driver.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)

from amplify_auth_client.contract import (
    DEFAULT_GRACE_SECONDS,
    LABEL_PATTERN,
    MAX_BULK_IDS,
    MAX_DESCRIPTION_LENGTH,
    MAX_GRACE_SECONDS,
    MAX_METADATA_ITEMS,
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_VALUE_LENGTH,
    MAX_NAME_LENGTH,
    MAX_OWNER_LENGTH,
    MAX_SCOPE_LENGTH,
    MAX_SCOPES,
    MAX_TOKEN_FIELD,
    MAX_TTL_DAYS,
    MAX_USAGE_COUNT,
    MAX_USAGE_HITS,
    MIN_FINISH_WHEN_IDLE_SECONDS,
    OWNER_PATTERN,
    SCOPE_PATTERN,
    TEXT_PATTERN,
    TOKEN_ID,
    USAGE_DAYS,
    Reason,
    TokenStatus,
)
from amplify_auth_server.models import AuditRecord, TokenRecord

_LABEL = "No control characters, and no space at either end."
_TEXT = "No control characters but tab and newline."


def _unique(scopes: list[str]) -> list[str]:
    if len(set(scopes)) != len(scopes):
        raise ValueError("a scope is listed twice; list each once")
    return scopes


Scope = Annotated[
    str,
    StringConstraints(pattern=SCOPE_PATTERN),
    Field(description="Letters, digits and `_.:/*-`, starting with a letter or digit, ≤ 64."),
]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH, pattern=LABEL_PATTERN),
    Field(description=f"1 to {MAX_NAME_LENGTH} characters. {_LABEL}"),
]
Owner = Annotated[
    str,
    StringConstraints(pattern=OWNER_PATTERN),
    Field(
        description=f"A team or service: 1 to {MAX_OWNER_LENGTH} of lowercase letters, "
        "digits and `._-`, starting with a letter or digit."
    ),
]
Description = Annotated[
    str,
    StringConstraints(max_length=MAX_DESCRIPTION_LENGTH, pattern=TEXT_PATTERN),
    Field(description=f"Up to {MAX_DESCRIPTION_LENGTH} characters. {_TEXT}"),
]
MetaKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_METADATA_KEY_LENGTH, pattern=LABEL_PATTERN),
]
MetaValue = Annotated[
    str, StringConstraints(max_length=MAX_METADATA_VALUE_LENGTH, pattern=TEXT_PATTERN)
]
#: A name prefix to list by (a prefix may end in a space; no control characters).
NamePrefix = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH, pattern=TEXT_PATTERN)
]
Scopes = Annotated[
    list[Scope],
    Field(min_length=1, max_length=MAX_SCOPES, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_unique),
]
Days = Annotated[
    StrictInt,
    Field(
        ge=1,
        le=MAX_TTL_DAYS,
        description='A JSON integer, written without a fraction: 3.0 and "3" are refused.',
    ),
]


def _metadata_schema(schema: dict[str, Any]) -> None:
    # pydantic states a key's pattern as patternProperties, which leaves keys
    # that do not match it free to hold anything; the server refuses them.
    # Said plainly: every name must fit, and every value.
    (value,) = schema.pop("patternProperties").values()
    schema["propertyNames"]["pattern"] = LABEL_PATTERN
    schema["additionalProperties"] = value


Metadata = Annotated[
    dict[MetaKey, MetaValue],
    Field(max_length=MAX_METADATA_ITEMS, json_schema_extra=_metadata_schema),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ValidateRequest(BaseModel):
    """Unknown fields are ignored here, so that older servers accept newer clients."""

    token: Annotated[str, StringConstraints(max_length=MAX_TOKEN_FIELD)] = Field(
        description="The raw token, as the caller presented it."
    )
    required_scopes: Annotated[
        list[Annotated[str, StringConstraints(max_length=MAX_SCOPE_LENGTH)]],
        Field(max_length=MAX_SCOPES),
    ] = Field(default_factory=list, description="Every one of these must be held.")


class ValidateResponse(BaseModel):
    valid: bool
    scopes: list[str] = Field(description="The token's scopes when known and usable.")
    token_id: str | None
    name: str | None
    owner: str | None = Field(description="The team or service the token belongs to, if any.")
    reason: Reason | None = Field(description="Null when valid.")
    missing_scopes: list[str] = Field(description="For `insufficient_scope`: what is missing.")
    expires_at: datetime | None = Field(
        description="When the token expires; clients never cache an answer past it."
    )
    replaced_by: str | None = Field(
        default=None,
        description="A rotated token in its grace period: the id of the token that "
        "replaces it (log it: the caller should move to the new token). Null otherwise.",
    )


class CreateTokenRequest(_Request):
    name: Name
    scopes: Scopes = Field(description=f"1 to {MAX_SCOPES} scopes, each listed once.")
    ttl_days: Days | None = Field(
        default=None, description="Days until the token expires; null means never."
    )
    description: Description | None = None
    metadata: Metadata | None = Field(
        default=None,
        description=f"Up to {MAX_METADATA_ITEMS} pairs. Keys: 1 to {MAX_METADATA_KEY_LENGTH} "
        f"characters, {_LABEL[0].lower()}{_LABEL[1:]} Values: up to "
        f"{MAX_METADATA_VALUE_LENGTH} characters, {_TEXT[0].lower()}{_TEXT[1:]}",
    )
    owner: Owner | None = Field(
        default=None,
        description="The team or service the token belongs to; never changes. Required with "
        "`tokens:manage`. A delegated admin's tokens get its own owner.",
    )


class ExtendTokenRequest(_Request):
    days: Days


class RotateTokenRequest(_Request):
    """How long the old token keeps working beside its successor."""

    grace_seconds: Annotated[StrictInt, Field(ge=0, le=MAX_GRACE_SECONDS)] = Field(
        default=DEFAULT_GRACE_SECONDS,
        description=f"Seconds the old token stays valid (0 to {MAX_GRACE_SECONDS}, 30 days; "
        f"{DEFAULT_GRACE_SECONDS} by default), or until its own expiry if sooner. 0 revokes "
        "it at once.",
    )
    finish_when_idle_seconds: Annotated[
        StrictInt | None, Field(ge=MIN_FINISH_WHEN_IDLE_SECONDS, le=MAX_GRACE_SECONDS)
    ] = Field(
        default=None,
        description="End the grace early: revoke the old token once it has gone unused "
        f"this many seconds, counting SDK cache hits (at least {MIN_FINISH_WHEN_IDLE_SECONDS}, "
        "longer than an SDK's report interval; at most `grace_seconds`).",
    )

    @model_validator(mode="after")
    def _within_grace(self) -> RotateTokenRequest:
        idle = self.finish_when_idle_seconds
        if idle is not None and idle > self.grace_seconds:
            raise ValueError(
                "finish_when_idle_seconds ends the grace early, so it must not exceed grace_seconds"
            )
        return self


class TokenRecordResponse(BaseModel):
    """A token as management sees it: never its hash, never the raw token."""

    token_id: str
    name: str
    scopes: list[str]
    status: TokenStatus
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    description: str | None
    metadata: dict[str, str] | None
    owner: str | None
    last_used_at: datetime | None = Field(
        default=None,
        description="When a validation last answered this token valid (or refused it only "
        "for its scopes), as the server wrote it down: up to `USAGE_FLUSH_SECONDS` after "
        "the use through the server, up to an SDK's report interval more through an SDK's "
        "cache. Null: never used.",
    )
    replaced_by: str | None = Field(
        default=None, description="Rotated: the id of the token that replaces this one."
    )
    rotated_from: str | None = Field(
        default=None, description="A rotation's successor: the id of the token it replaced."
    )
    finish_when_idle_seconds: int | None = Field(
        default=None,
        description="Rotated: the grace ends once this token is unused for this many seconds.",
    )

    @classmethod
    def of(cls, record: TokenRecord, now: datetime) -> TokenRecordResponse:
        return cls(
            token_id=record.id,
            name=record.name,
            scopes=list(record.scopes),
            status=record.status(now),
            created_at=record.created_at,
            expires_at=record.expires_at,
            revoked_at=record.revoked_at,
            description=record.description,
            metadata=record.metadata,
            owner=record.owner,
            last_used_at=record.last_used_at,
            replaced_by=record.replaced_by,
            rotated_from=record.rotated_from,
            finish_when_idle_seconds=record.finish_when_idle_seconds,
        )


class UsageDay(BaseModel):
    day: date = Field(description="A UTC day.")
    count: int = Field(description="The token's uses that day, every replica and SDK together.")


class TokenDetailResponse(TokenRecordResponse):
    """One token, with its usage: what ``GET /auth/tokens/{id}`` answers."""

    usage: list[UsageDay] = Field(
        default_factory=list,
        description=f"Uses per UTC day over the last {USAGE_DAYS} days, oldest first; "
        "days without a use are left out.",
    )


class UsageHit(_Request):
    token_hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="SHA-256 of the token, lowercase hex: never the token itself."
    )
    count: Annotated[StrictInt, Field(ge=1, le=MAX_USAGE_COUNT)] = Field(
        description="Cache hits since the SDK's last report."
    )


class UsageReport(_Request):
    """An SDK's cache hits since its last report (``POST /auth/usage``)."""

    hits: Annotated[list[UsageHit], Field(max_length=MAX_USAGE_HITS)]


class CreatedTokenResponse(BaseModel):
    token: str | None = Field(
        description="The raw token. Shown once: store it now. Null in a replay "
        "(`Idempotent-Replayed: true`, status 200): the key's create happened earlier, "
        "and its raw token was in that answer only."
    )
    token_id: str
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    description: str | None
    metadata: dict[str, str] | None
    owner: str | None


class RotatedTokenResponse(CreatedTokenResponse):
    """A rotation's answer: the successor as a create answers it, and the old token now."""

    rotated_from: str = Field(description="The id of the token this one replaces.")
    previous: TokenRecordResponse = Field(
        description="The old token as the rotation left it: `replaced_by` this one, valid "
        "until its new `expires_at` (or revoked, for a grace of 0)."
    )


class AuditRecordResponse(BaseModel):
    id: int
    at: datetime
    actor_id: str = Field(
        description="The admin token's id, `system`, or `anonymous` (a failed admin "
        "authentication without a known token)."
    )
    actor_name: str | None
    action: str
    token_id: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, record: AuditRecord) -> AuditRecordResponse:
        return cls(
            id=record.id,
            at=record.at,
            actor_id=record.actor_id,
            actor_name=record.actor_name,
            action=record.action,
            token_id=record.token_id,
            details=record.details,
        )


class TokenPageResponse(BaseModel):
    """One page of a token listing, newest first."""

    items: list[TokenRecordResponse]
    next_cursor: str | None = Field(
        description="Send it as `cursor`, with the same filters, for the next page; null on "
        "the last page."
    )


class AuditPageResponse(BaseModel):
    """One page of the audit log, newest first."""

    items: list[AuditRecordResponse]
    next_cursor: str | None = Field(
        description="Send it as `cursor`, with the same filters, for the next page; null on "
        "the last page."
    )


TokenIdText = Annotated[str, StringConstraints(pattern=rf"^{TOKEN_ID.pattern}$")]


def _unique_ids(ids: list[str]) -> list[str]:
    if len(set(ids)) != len(ids):
        raise ValueError("a token id is listed twice; list each once")
    return ids


class RevokeByIds(_Request):
    """Revoke these tokens."""

    token_ids: Annotated[
        list[TokenIdText],
        Field(min_length=1, max_length=MAX_BULK_IDS, json_schema_extra={"uniqueItems": True}),
        AfterValidator(_unique_ids),
    ] = Field(description=f"1 to {MAX_BULK_IDS} token ids, each once.")


_FILTERS = ("name", "scope", "expires_within_days", "owner", "unused_for_days", "used_within_days")


#: Days for the usage filters, up to the longest a token can live; at least 1,
#: since "unused for 0 days" would be every token.
UsageDays = Annotated[StrictInt, Field(ge=1, le=MAX_TTL_DAYS)]


def _one_filter_at_least(schema: dict[str, Any]) -> None:
    # Said in the schema too: at least one filter, and not null.
    schema["anyOf"] = [
        {"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in _FILTERS
    ]


class RevokeFilter(_Request):
    """Which active tokens to revoke: all of these conditions at once, at least one of them."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_filter_at_least)

    name: NamePrefix | None = Field(
        default=None, description="Tokens whose name starts so (any case)."
    )
    scope: Scope | None = Field(default=None, description="Tokens holding it.")
    expires_within_days: Annotated[StrictInt | None, Field(ge=0, le=MAX_TTL_DAYS)] = Field(
        default=None, description="Tokens expiring within this many days."
    )
    owner: Owner | None = Field(
        default=None, description="Tokens of this owner (a delegated admin: only its own)."
    )
    unused_for_days: UsageDays | None = Field(
        default=None, description="Tokens not used for this many days (never used: unused)."
    )
    used_within_days: UsageDays | None = Field(
        default=None, description="Tokens used within this many days."
    )

    @model_validator(mode="after")
    def _something(self) -> RevokeFilter:
        if all(getattr(self, name) is None for name in _FILTERS):
            raise ValueError(
                f"give at least one filter ({', '.join(_FILTERS)}): revoking "
                "every token is not something a request does by omission"
            )
        return self


class RevokeByFilter(_Request):
    """Revoke every active token matching ``filter``, or, with ``dry_run``, count them."""

    filter: RevokeFilter
    dry_run: bool = Field(default=False, description="Count them, and revoke none.")


#: Either ids, or a filter: two shapes, one endpoint.
BulkRevokeRequest = RevokeByIds | RevokeByFilter


class BulkRevokeResponse(BaseModel):
    """What a bulk revocation did. The lists are there for ``token_ids``, null for filters."""

    revoked_count: int = Field(description="Tokens revoked now (or that would be, dry run).")
    revoked: list[str] | None
    already_revoked: list[str] | None
    not_found: list[str] | None = Field(
        description="Ids of no token (of none this caller may manage)."
    )


ComponentStatus = Literal["healthy", "unhealthy", "disabled", "running", "stopped"]


class HealthComponents(BaseModel):
    database: ComponentStatus
    redis: ComponentStatus
    command_processor: ComponentStatus


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    version: str
    components: HealthComponents


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    error: str = Field(description="A stable code: `not_found`, `unauthorized`, …")
    detail: str = Field(description="What went wrong and how to fix it.")
    errors: list[FieldError] | None = Field(
        default=None, description="For `invalid_request`: which fields, and why."
    )
