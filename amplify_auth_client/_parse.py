"""Reading the server's JSON: strict, because a wrong type here must not become "valid".

Every reader raises ``KeyError``, ``TypeError`` or ``ValueError`` on a body
off the contract; the engine (:mod:`._base`) turns that into
:class:`~amplify_auth_client.AuthServiceUnavailable`. Error bodies are read
loosely instead (:func:`error_body`): an error stays an error whatever its
shape. Anything shaped like a token is scrubbed from text before it can
reach an exception (:func:`scrub`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Final, TypeVar, cast

import httpx

from amplify_auth_client import _cache
from amplify_auth_client._cache import Answer
from amplify_auth_client._exceptions import TokenAlreadyCreated
from amplify_auth_client._models import (
    AuditEntry,
    BulkRevocation,
    CreatedToken,
    Page,
    Reason,
    RotatedToken,
    TokenInfo,
    TokenStatus,
    UsageDay,
)
from amplify_auth_client.contract import CACHEABLE_REASONS, TOKEN_LIKE, is_owner, is_token_id

T = TypeVar("T")


def scrub(text: str, secret: str | None = None) -> str:
    """``text`` without anything that looks like a token, nor ``secret``.

    The server never echoes a token, so this is a second line of defence: a
    proxy or a future server bug must not put one in our exception messages.
    """
    if secret:
        text = text.replace(secret, "[redacted]")
    return TOKEN_LIKE.sub("[redacted]", text)


# -- reading JSON: strict, because a wrong type here must not become "valid" ---


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _strs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return tuple(_str(item) for item in value)


def _bool(value: Any) -> bool:
    # Never bool(value): the string "false" is truthy, and that would fail open.
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _time(value: Any) -> datetime:
    # Python 3.11 reads the server's "…Z" suffix. A time without a zone is
    # not one the server writes, and could be any zone: refused.
    parsed = datetime.fromisoformat(_str(value))
    if parsed.tzinfo is None:
        raise ValueError("a time without a time zone")
    return parsed


def _opt_time(value: Any) -> datetime | None:
    return None if value is None else _time(value)


def _owner(value: Any) -> str | None:
    # Absent (a server older than owners) is no owner; present, it must be one.
    if value is None:
        return None
    if not is_owner(value):
        raise ValueError("an owner that is not one")
    return value


def _token_id(value: Any) -> str | None:
    # Absent (a server older than rotation) is none; present, it must be an id.
    if value is None:
        return None
    if not is_token_id(value):
        raise ValueError("a token id that is not one")
    return value


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return {_str(k): _str(v) for k, v in value.items()}


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _array(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected an array, got {type(value).__name__}")
    return value


def parse_answer(data: Any) -> Answer:
    """A ``/auth/validate`` body as an :class:`Answer`.

    ``valid`` is read first, strictly. A positive answer must then be the
    server's whole positive answer (see :func:`_positive`): anything less is
    a protocol error, so never valid and never cached. A negative answer
    stays a "no" even when the rest cannot be read (a newer server's richer
    ``reason``, say), but one we do not cache.
    """
    body = _object(data)
    if not _bool(body["valid"]):
        return _negative(body)
    return _positive(body)


#: Every field the server sends with ``"valid": true``, always.
_POSITIVE_FIELDS: Final = frozenset(
    {"valid", "scopes", "token_id", "name", "reason", "missing_scopes", "expires_at"}
)


def _positive(body: dict[str, Any]) -> Answer:
    """A positive answer, taken only when it is complete and consistent.

    A stub, a mock or a misconfigured proxy that answers ``{"valid": true}``
    to everything must not let every token in: each field the server always
    sends must be there, with its type; the token must be named by an id of
    the server's shape; ``reason`` must be null and ``missing_scopes`` empty
    (we asked for no scopes); and the token must not have expired already.
    """
    missing = _POSITIVE_FIELDS - body.keys()
    if missing:
        raise ValueError(f"a positive answer without {', '.join(sorted(missing))}")
    if body["reason"] is not None:
        raise ValueError("a positive answer that gives a reason")
    if _array(body["missing_scopes"]):
        raise ValueError("a positive answer with missing scopes, to a question that asked none")
    token_id = _str(body["token_id"])
    if not is_token_id(token_id):
        raise ValueError("a positive answer whose token_id is not a token id")
    expires_at = _opt_time(body["expires_at"])
    # The cache's wall clock, which it judges every entry's expiry by.
    if expires_at is not None and expires_at.timestamp() <= _cache.wall_time():
        raise ValueError("a positive answer for a token that has expired")
    return Answer(
        positive=True,
        scopes=_strs(body["scopes"]),
        token_id=token_id,
        name=_str(body["name"]),
        reason=None,
        expires_at=expires_at,
        owner=_owner(body.get("owner")),
        replaced_by=_token_id(body.get("replaced_by")),
    )


def _negative(body: dict[str, Any]) -> Answer:
    reason = body.get("reason")
    if reason == "insufficient_scope":
        # We always ask with no scopes, so a server keeping to the contract
        # cannot say this; the answer says nothing we can rely on.
        raise ValueError("a validation that asked for no scopes was answered insufficient_scope")
    try:
        return Answer(
            positive=False,
            scopes=_strs(body.get("scopes", [])),
            token_id=_opt_str(body.get("token_id")),
            name=_opt_str(body.get("name")),
            # A reason this client does not know yet is passed on as is, but
            # not cached: we cannot tell for how long it holds.
            reason=cast(Reason | None, _opt_str(reason)),
            expires_at=_opt_time(body.get("expires_at")),
            cacheable=reason in CACHEABLE_REASONS,
            owner=_owner(body.get("owner")),
        )
    except (KeyError, TypeError, ValueError, OverflowError):
        return Answer(
            positive=False,
            scopes=(),
            token_id=None,
            name=None,
            reason=cast(Reason | None, reason if isinstance(reason, str) else None),
            expires_at=None,
            cacheable=False,
        )


def parse_token_info(data: Any) -> TokenInfo:
    """A token record of the management API as a :class:`TokenInfo`."""
    body = _object(data)
    # A status this client does not know yet is passed on, not refused.
    status = _str(body["status"])
    return TokenInfo(
        token_id=_str(body["token_id"]),
        name=_str(body["name"]),
        scopes=_strs(body["scopes"]),
        status=cast(TokenStatus, status),
        created_at=_time(body["created_at"]),
        expires_at=_opt_time(body.get("expires_at")),
        revoked_at=_opt_time(body.get("revoked_at")),
        description=_opt_str(body.get("description")),
        metadata=_metadata(body.get("metadata")),
        owner=_owner(body.get("owner")),
        last_used_at=_opt_time(body.get("last_used_at")),
        usage=tuple(_usage_day(day) for day in _list(body.get("usage", []))),
        replaced_by=_token_id(body.get("replaced_by")),
        rotated_from=_token_id(body.get("rotated_from")),
        finish_when_idle_seconds=_opt_int(body.get("finish_when_idle_seconds")),
    )


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("a list that is not one")
    return value


def _usage_day(value: Any) -> UsageDay:
    day = _object(value)
    count = day["count"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError("a usage count that is not one")
    return UsageDay(day=date.fromisoformat(_str(day["day"])), count=count)


def parse_created(data: Any) -> CreatedToken:
    """The answer to ``POST /auth/tokens`` as a :class:`CreatedToken`."""
    body = _object(data)
    if body.get("token", "") is None:  # a replay: the token was in the first answer only
        token_id = _str(body["token_id"])
        raise TokenAlreadyCreated(
            f"token {token_id} was created earlier with this idempotency key, and its raw "
            "token was in that answer only, so it cannot be shown again; if that answer was "
            f"lost, nobody holds the token: revoke {token_id} and create again (a new call "
            "sends a new key)",
            token_id=token_id,
        )
    return CreatedToken(
        token=_str(body["token"]),
        token_id=_str(body["token_id"]),
        name=_str(body["name"]),
        scopes=_strs(body["scopes"]),
        created_at=_time(body["created_at"]),
        expires_at=_opt_time(body.get("expires_at")),
        description=_opt_str(body.get("description")),
        metadata=_metadata(body.get("metadata")),
        owner=_owner(body.get("owner")),
    )


def parse_rotated(data: Any) -> RotatedToken:
    """The answer to ``POST /auth/tokens/{id}/rotate`` as a :class:`RotatedToken`
    (a replay raises :class:`TokenAlreadyCreated`, as a create's does)."""
    body = _object(data)
    if body.get("token", "") is None:  # a replay, said for a rotation
        token_id = _str(body["token_id"])
        previous_id = _str(_object(body["previous"])["token_id"])
        raise TokenAlreadyCreated(
            f"token {previous_id} was rotated earlier with this idempotency key, into "
            f"{token_id}, whose raw token was in that answer only, so it cannot be shown "
            f"again; if that answer was lost, nobody holds it: revoke {token_id} and create "
            f"a token to replace {previous_id} (which stays valid until its deadline, and "
            "cannot be rotated twice)",
            token_id=token_id,
        )
    created = parse_created(data)
    previous = parse_token_info(body["previous"])
    if _str(body["rotated_from"]) != previous.token_id:
        raise ValueError("a rotation whose rotated_from is not its previous token")
    return RotatedToken(
        token=created.token,
        token_id=created.token_id,
        name=created.name,
        scopes=created.scopes,
        created_at=created.created_at,
        expires_at=created.expires_at,
        description=created.description,
        metadata=created.metadata,
        owner=created.owner,
        previous=previous,
    )


def parse_audit_entry(data: Any) -> AuditEntry:
    """One audit record as an :class:`AuditEntry`."""
    body = _object(data)
    entry_id = body["id"]
    if isinstance(entry_id, bool) or not isinstance(entry_id, int):
        raise TypeError("an audit id must be an integer")
    return AuditEntry(
        id=entry_id,
        at=_time(body["at"]),
        actor_id=_str(body["actor_id"]),
        actor_name=_opt_str(body.get("actor_name")),
        action=_str(body["action"]),
        token_id=_opt_str(body.get("token_id")),
        details=_object(body.get("details", {})),
    )


def error_body(
    response: httpx.Response, secret: str | None
) -> tuple[str, str, list[dict[str, Any]]]:
    """``(code, detail, errors)`` of an error answer, whatever shape it has."""
    fallback = f"http_{response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return fallback, f"unexpected answer (HTTP {response.status_code})", []
    if not isinstance(body, dict):
        return fallback, f"unexpected answer (HTTP {response.status_code})", []
    code = body.get("error")
    detail = body.get("detail")
    errors: list[dict[str, Any]] = []
    for item in body.get("errors") or ():
        if isinstance(item, dict):
            loc = item.get("loc")
            # Every part that is text is scrubbed: a server that echoes a
            # field's value could put it in any of them.
            errors.append(
                {
                    "loc": [p if isinstance(p, int) else scrub(str(p), secret) for p in loc]
                    if isinstance(loc, list)
                    else [],
                    "msg": scrub(str(item.get("msg", "")), secret),
                    "type": scrub(str(item.get("type", "")), secret),
                }
            )
    return (
        scrub(code, secret) if isinstance(code, str) else fallback,
        scrub(detail if isinstance(detail, str) else "no detail given", secret),
        errors,
    )


def page_of(parse: Callable[[Any], T]) -> Callable[[Any], Page[T]]:
    """A reader of ``{"items": [...], "next_cursor": ...}`` whose items ``parse`` reads."""

    def parse_page(data: Any) -> Page[T]:
        body = _object(data)
        return Page(
            tuple(parse(item) for item in _array(body["items"])), _opt_str(body["next_cursor"])
        )

    return parse_page


def parse_bulk(data: Any) -> BulkRevocation:
    """The answer to a bulk revocation by ids."""
    body = _object(data)
    return BulkRevocation(
        revoked=_strs(body["revoked"]),
        already_revoked=_strs(body["already_revoked"]),
        not_found=_strs(body["not_found"]),
    )


def parse_count(data: Any) -> int:
    """The answer to a bulk revocation by filters: how many tokens it revoked."""
    count = _object(data)["revoked_count"]
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError("revoked_count must be an integer")
    return count
