"""Every request and response body of the HTTP API, as pydantic models.

The limits and grammars are the contract's
(:mod:`amplify_auth_client.contract`), which the SDK, its fake server and
``stateless_microservice`` read too. Text fields refuse control characters:
PostgreSQL cannot store a NUL, and such a string must be a 422 at the door,
not a 500 in the driver.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from amplify_auth_client.contract import (
    MAX_DESCRIPTION_LENGTH,
    MAX_METADATA_ITEMS,
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_VALUE_LENGTH,
    MAX_NAME_LENGTH,
    MAX_SCOPE_LENGTH,
    MAX_SCOPES,
    MAX_TOKEN_FIELD,
    MAX_TTL_DAYS,
    SCOPE_PATTERN,
    Reason,
    TokenStatus,
    has_control_characters,
)
from amplify_auth_server.models import AuditRecord, TokenRecord


def _printable(value: str) -> str:
    # Unpaired surrogates never get this far: the JSON parser refuses them.
    if has_control_characters(value):
        raise ValueError("text must not contain control characters")
    return value


Scope = Annotated[
    str,
    StringConstraints(pattern=SCOPE_PATTERN),
    Field(description="Letters, digits and `_.:/*-`, starting with a letter or digit, ≤ 64."),
]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH, strip_whitespace=True),
    AfterValidator(_printable),
]
Description = Annotated[
    str, StringConstraints(max_length=MAX_DESCRIPTION_LENGTH), AfterValidator(_printable)
]
MetaKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_METADATA_KEY_LENGTH),
    AfterValidator(_printable),
]
MetaValue = Annotated[
    str, StringConstraints(max_length=MAX_METADATA_VALUE_LENGTH), AfterValidator(_printable)
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
    reason: Reason | None = Field(description="Null when valid.")
    missing_scopes: list[str] = Field(description="For `insufficient_scope`: what is missing.")
    expires_at: datetime | None = Field(
        description="When the token expires; clients never cache an answer past it."
    )


class CreateTokenRequest(_Request):
    name: Name
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=MAX_SCOPES)]
    ttl_days: Annotated[int | None, Field(ge=1, le=MAX_TTL_DAYS)] = Field(
        default=None, description="Days until the token expires; null means never."
    )
    description: Description | None = None
    metadata: Annotated[dict[MetaKey, MetaValue] | None, Field(max_length=MAX_METADATA_ITEMS)] = (
        None
    )


class ExtendTokenRequest(_Request):
    days: Annotated[int, Field(ge=1, le=MAX_TTL_DAYS)]


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
        )


class CreatedTokenResponse(BaseModel):
    token: str = Field(description="The raw token. Shown once: store it now.")
    token_id: str
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    description: str | None
    metadata: dict[str, str] | None


class AuditRecordResponse(BaseModel):
    id: int
    at: datetime
    actor_id: str = Field(description="The admin token's id, or `system`.")
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
