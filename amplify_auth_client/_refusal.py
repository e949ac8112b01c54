"""``Refusal``: every way a request is turned away before its handler runs, RFC 6750 to the letter.

::

    400 invalid_request      two Authorization headers (RFC 6750 section 3.1)
    401 unauthorized         no bearer token (a bare challenge, without an error code)
    401 invalid_token        malformed, unknown, revoked or expired token
    403 insufficient_scope   valid token, missing some of the action's scopes
    503 auth_unavailable     the auth service could not be asked: never a 401, never a pass

Written once, here, for ``StatelessService`` and every integration: they
send these statuses, headers and bodies as they are (gRPC maps the status to
its own codes), so that they refuse alike. A body is ``{"error": code,
"detail": text, ...}``; none is ever built from the caller's token: the
details name the token's *state* (revoked, expired), never its value.

Why RFC 6750 to the letter: HTTP clients and gateways read
``WWW-Authenticate`` to decide what to do next. ``invalid_token`` means "get
a new token", ``insufficient_scope`` means "get a token with these scopes"
(listed in ``scope``), and a request with no credentials at all gets a bare
challenge, since the RFC asks that it carry no error code. A 503 carries no
challenge at all: the token may be fine, and the client should retry, not
re-authenticate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

#: Seconds a client is asked to wait after a 503 before retrying.
RETRY_AFTER_SECONDS: Final = 5
#: What a realm may be: it goes between quotes in ``WWW-Authenticate``.
REALM: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:-]{0,99}")

_REASONS: Final[Mapping[str | None, str]] = {
    "malformed": "the bearer token is malformed",
    "unknown": "the bearer token is not known to the auth service",
    "revoked": "the bearer token has been revoked",
    "expired": "the bearer token has expired",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer that turns a request away: ``status``, ``headers`` and a JSON body.

    >>> from amplify_auth_client._refusal import invalid_token
    >>> refusal = invalid_token("orders", "revoked")
    >>> challenge = refusal.headers["WWW-Authenticate"]
    >>> refusal.status, challenge.startswith('Bearer realm="orders", error="invalid_token"')
    (401, True)
    >>> refusal.body()
    {'error': 'invalid_token', 'detail': 'the bearer token has been revoked'}
    """

    status: int
    code: str
    detail: str
    headers: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"error": code, "detail": text, ...extra}``."""
        return {"error": self.code, "detail": self.detail, **self.extra}

    def json(self) -> bytes:
        """The body as compact JSON bytes, for frameworks that send bytes."""
        return json.dumps(self.body(), separators=(",", ":")).encode()


def challenge(realm: str | None, **params: str) -> dict[str, str]:
    """The ``WWW-Authenticate`` header of a Bearer challenge (RFC 6750 section 3).

    Every value here is ours (a realm checked against :data:`REALM`, scopes
    of the scope grammar, our own descriptions): none needs escaping beyond
    the quotes.
    """
    fields = {"realm": realm, **params} if realm is not None else params
    if not fields:
        return {"WWW-Authenticate": "Bearer"}
    return {"WWW-Authenticate": "Bearer " + ", ".join(f'{k}="{v}"' for k, v in fields.items())}


def check_realm(realm: str | None) -> str | None:
    """``realm`` if it can stand between quotes in a header; a ValueError saying the fix."""
    if realm is not None and (not isinstance(realm, str) or not REALM.fullmatch(realm)):
        raise ValueError(
            f"realm {realm!r}: use letters, digits, spaces and . _ : - "
            "(it is the realm of WWW-Authenticate)"
        )
    return realm


def missing_token(realm: str | None) -> Refusal:
    return Refusal(
        401,
        "unauthorized",
        "this action needs a bearer token: send `Authorization: Bearer <token>`",
        challenge(realm),
    )


def ambiguous_credentials(realm: str | None) -> Refusal:
    return Refusal(
        400,
        "invalid_request",
        "send exactly one Authorization header",
        challenge(realm, error="invalid_request"),
    )


def invalid_token(realm: str | None, reason: str | None) -> Refusal:
    detail = _REASONS.get(reason, "the bearer token is not valid")
    return Refusal(
        401,
        "invalid_token",
        detail,
        challenge(realm, error="invalid_token", error_description=detail),
    )


def insufficient_scope(
    realm: str | None, required: Collection[str], missing: Collection[str]
) -> Refusal:
    return Refusal(
        403,
        "insufficient_scope",
        f"this action needs the scopes {', '.join(required)}; the token lacks {', '.join(missing)}",
        challenge(realm, error="insufficient_scope", scope=" ".join(required)),
        {"required_scopes": list(required), "missing_scopes": list(missing)},
    )


def auth_unavailable() -> Refusal:
    return Refusal(
        503,
        "auth_unavailable",
        "the token could not be checked: the auth service is unavailable; retry shortly",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
