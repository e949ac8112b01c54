"""The HTTP API the SDK speaks, one function per call: what to send, and how to read it.

Each function describes a call as a :class:`Call` without sending it; the
engine (:mod:`._base`) sends it with retries, and the shells
(:mod:`._client`, :mod:`._async_client`) only wrap these in methods.

Where secrets go: the raw token to validate is sent in a POST body, never a
URL (httpx logs URLs at INFO). Token ids are checked before they become part
of a URL, so a raw token passed by mistake where an id belongs is refused
locally, and never sent.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from amplify_auth_client._cache import Answer
from amplify_auth_client._exceptions import InvalidRequest
from amplify_auth_client._models import (
    AuditEntry,
    BulkRevocation,
    CreatedToken,
    Page,
    RotatedToken,
    TokenInfo,
)
from amplify_auth_client._parse import (
    page_of,
    parse_answer,
    parse_audit_entry,
    parse_bulk,
    parse_count,
    parse_created,
    parse_rotated,
    parse_token_info,
)
from amplify_auth_client.contract import (
    IDEMPOTENCY_KEY_HEADER,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    TOKEN_PREFIX,
    ListStatus,
    is_idempotency_key,
    is_token_id,
    iso,
    new_idempotency_key,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API call, described without sending it.

    ``idempotent`` decides which failures may be retried (see
    :mod:`amplify_auth_client._retry`); ``admin`` adds the admin token;
    ``secret`` is scrubbed from any message about this call; ``fail_closed``
    makes every non-2xx answer :class:`AuthServiceUnavailable`; ``forget``
    names a token whose cached answers the call makes wrong.
    """

    name: str
    method: str
    path: str
    parse: Callable[[Any], T]
    #: Out of repr: a validation's body holds the raw token.
    json: dict[str, Any] | None = field(default=None, repr=False)
    params: dict[str, str] | None = None
    #: Headers of this call (an idempotency key); out of repr, as a key may be private.
    headers: dict[str, str] | None = field(default=None, repr=False)
    admin: bool = True
    idempotent: bool = True
    secret: str | None = field(default=None, repr=False)
    #: Every answer but a 2xx is AuthServiceUnavailable (validation: never a 4xx error).
    fail_closed: bool = False
    #: The id of a token this call changes: the cache forgets it around the call.
    forget: str | None = None
    #: The call changes tokens this client cannot name in advance: forget every answer.
    forget_all: bool = False


def validate(token: str) -> Call[Answer]:
    # Always without scopes: the scopes are checked locally, so one answer
    # serves every combination, and concurrent misses can share it.
    return Call(
        "validate",
        "POST",
        "/auth/validate",
        parse_answer,
        json={"token": token, "required_scopes": []},
        admin=False,
        secret=token,
        # A 4xx here is no answer about the token: most likely base_url
        # points elsewhere. Fail closed, with the status in the message.
        fail_closed=True,
    )


def create_token(
    name: str,
    scopes: Collection[str],
    ttl_days: int | None,
    description: str | None,
    metadata: Mapping[str, str] | None,
    owner: str | None = None,
    idempotency_key: str | None = None,
) -> Call[CreatedToken]:
    if isinstance(scopes, str):
        raise TypeError(f"scopes must be a collection of scope names, not a str: [{scopes!r}]")
    body: dict[str, Any] = {"name": name, "scopes": list(scopes)}
    if ttl_days is not None:
        body["ttl_days"] = ttl_days
    if description is not None:
        body["description"] = description
    if metadata is not None:
        body["metadata"] = dict(metadata)
    if owner is not None:
        body["owner"] = owner
    idempotency_key = _idempotency_key(idempotency_key)
    # Idempotent thanks to the key, sent by every attempt of this one call:
    # a repeat after a lost answer is a replay (TokenAlreadyCreated), never a
    # second token.
    return Call(
        "create_token",
        "POST",
        "/auth/tokens",
        parse_created,
        json=body,
        headers={IDEMPOTENCY_KEY_HEADER: idempotency_key},
    )


def _idempotency_key(key: str | None) -> str:
    """``key``, checked, or a fresh one: what every attempt of one call sends."""
    if key is None:
        return new_idempotency_key()
    if not is_idempotency_key(key):
        # Not echoed: a caller's key may be something it keeps private.
        raise InvalidRequest(
            f"idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII "
            "characters, without spaces (a UUID, say)",
            status_code=None,
            code="invalid_request",
        )
    return key


def rotate_token(
    token_id: str,
    grace_seconds: int,
    finish_when_idle_seconds: int | None,
    idempotency_key: str | None = None,
) -> Call[RotatedToken]:
    body: dict[str, Any] = {"grace_seconds": grace_seconds}
    if finish_when_idle_seconds is not None:
        body["finish_when_idle_seconds"] = finish_when_idle_seconds
    path = f"/auth/tokens/{_checked_id(token_id)}/rotate"
    # Idempotent thanks to the key, as a create is: a repeat after a lost
    # answer is a replay (TokenAlreadyCreated), never a second successor.
    return Call(
        "rotate_token",
        "POST",
        path,
        parse_rotated,
        json=body,
        headers={IDEMPOTENCY_KEY_HEADER: _idempotency_key(idempotency_key)},
        forget=token_id,
    )


def _query(**values: object) -> dict[str, str]:
    """Query parameters: None left out, times as the API writes them, the rest as text."""
    return {
        name: iso(value) if isinstance(value, datetime) else str(value)
        for name, value in values.items()
        if value is not None
    }


def list_tokens(
    *,
    status: ListStatus | None,
    name: str | None,
    scope: str | None,
    expires_within_days: int | None,
    limit: int,
    cursor: str | None,
    owner: str | None = None,
    unused_for_days: int | None = None,
    used_within_days: int | None = None,
) -> Call[Page[TokenInfo]]:
    params = _query(
        status=status,
        name=name,
        scope=scope,
        expires_within_days=expires_within_days,
        owner=owner,
        unused_for_days=unused_for_days,
        used_within_days=used_within_days,
        limit=limit,
        cursor=cursor,
    )
    return Call("list_tokens", "GET", "/auth/tokens", page_of(parse_token_info), params=params)


def get_token(token_id: str) -> Call[TokenInfo]:
    return Call("get_token", "GET", f"/auth/tokens/{_checked_id(token_id)}", parse_token_info)


def revoke_token(token_id: str) -> Call[TokenInfo]:
    # Idempotent on the server: revoking twice changes nothing the second time.
    path = f"/auth/tokens/{_checked_id(token_id)}/revoke"
    return Call("revoke_token", "POST", path, parse_token_info, forget=token_id)


def extend_token(token_id: str, days: int) -> Call[TokenInfo]:
    path = f"/auth/tokens/{_checked_id(token_id)}/extend"
    # Not idempotent: each success adds ``days`` again.
    return Call(
        "extend_token",
        "POST",
        path,
        parse_token_info,
        json={"days": days},
        idempotent=False,
        forget=token_id,
    )


def audit(
    *,
    token_id: str | None,
    action: str | None,
    actor: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> Call[Page[AuditEntry]]:
    """The whole log, or one token's trail (``token_id``): the same filters either way."""
    path = "/auth/audit" if token_id is None else f"/auth/tokens/{_checked_id(token_id)}/audit"
    params = _query(
        action=action, actor=actor, since=since, until=until, limit=limit, cursor=cursor
    )
    name = "audit" if token_id is None else "token_audit"
    return Call(name, "GET", path, page_of(parse_audit_entry), params=params)


def revoke_tokens(token_ids: Collection[str]) -> Call[BulkRevocation]:
    if isinstance(token_ids, str):
        raise TypeError(f"token_ids must be a collection of ids, not a str: [{token_ids!r}]")
    ids = [_checked_id(token_id) for token_id in token_ids]
    # Idempotent, as one revoke is: a second time, they are all already revoked.
    return Call(
        "revoke_tokens",
        "POST",
        "/auth/tokens/revoke",
        parse_bulk,
        json={"token_ids": ids},
        forget_all=True,
    )


def revoke_where(
    *,
    name: str | None,
    scope: str | None,
    expires_within_days: int | None,
    dry_run: bool,
    owner: str | None = None,
    unused_for_days: int | None = None,
    used_within_days: int | None = None,
) -> Call[int]:
    body: dict[str, Any] = {
        key: value
        for key, value in (
            ("name", name),
            ("scope", scope),
            ("expires_within_days", expires_within_days),
            ("owner", owner),
            ("unused_for_days", unused_for_days),
            ("used_within_days", used_within_days),
        )
        if value is not None
    }
    if not body:
        # The server refuses it too; said here without a round trip.
        raise InvalidRequest(
            "revoke_where needs at least one filter (name, scope, expires_within_days, owner, "
            "unused_for_days, used_within_days): "
            "revoking every token is not something a call does by omission",
            status_code=None,
            code="invalid_request",
        )
    return Call(
        "revoke_where",
        "POST",
        "/auth/tokens/revoke",
        parse_count,
        json={"filter": body, "dry_run": dry_run},
        # A dry run changes nothing; a real one is idempotent (already revoked
        # tokens match no filter of active ones).
        forget_all=not dry_run,
    )


def _checked_id(token_id: str) -> str:
    """``token_id`` if it has the ``tok_…`` shape; refused locally otherwise.

    The id becomes part of a URL, and URLs end up in logs: a raw token passed
    here by mistake must never be sent, nor echoed in the message.
    """
    if is_token_id(token_id):
        return token_id
    if isinstance(token_id, str) and token_id.startswith(TOKEN_PREFIX):
        detail = "this is a raw token, not a token id: never pass a token where an id belongs"
    else:
        detail = "token ids look like 'tok_' followed by 16 lowercase letters or digits"
    raise InvalidRequest(detail, status_code=None, code="invalid_request")
