"""One error type for every refusal a service sends, and the refusals it sends itself.

::

    ActionError                    an answer that is an error: status, code, detail, as JSON
    ├── raised by handlers         their own refusals (400, 404, 409, 422, ...)
    └── raised by the service      before a handler runs:
        400 invalid_request        two Authorization headers (RFC 6750 section 3.1)
        401 unauthorized           no bearer token (a challenge without an error code)
        401 invalid_token          malformed, unknown, revoked or expired token
        403 insufficient_scope     valid token, missing some of the action's scopes
        413 payload_too_large      a body over the service's max_body_bytes
        503 auth_unavailable       the auth service could not be asked: never a 401, never a pass

Every body is ``{"error": code, "detail": text, ...}``. None is ever built from
the caller's token: the details name the token's *state* (revoked, expired),
never its value, so a response or a log of responses cannot leak it.

Why RFC 6750 to the letter: HTTP clients and gateways read ``WWW-Authenticate``
to decide what to do next. ``invalid_token`` means "get a new token",
``insufficient_scope`` means "get a token with these scopes" (listed in
``scope``), and a request with no credentials at all gets a bare challenge,
since the RFC asks that it carry no error code. A 503 carries no challenge at
all: the token may be fine, and the client should retry, not re-authenticate.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

#: Seconds a client is asked to wait after a 503 before retrying.
RETRY_AFTER_SECONDS: Final = 5

_REASONS: Final[Mapping[str | None, str]] = {
    "malformed": "the bearer token is malformed",
    "unknown": "the bearer token is not known to the auth service",
    "revoked": "the bearer token has been revoked",
    "expired": "the bearer token has expired",
}


class ActionError(Exception):
    """Answer the request with an error: ``status_code``, and a JSON body ``{"error", "detail"}``.

    Raise it from a handler to refuse a request; the service turns it into
    the response, so handlers never build error responses themselves::

        if "text" not in body:
            raise ActionError("send {'text': ...}", status_code=422, code="invalid_body")

    ``extra`` adds fields to the body; ``headers`` are sent with it. Never put
    a secret in ``detail``: it is sent to the client as written.
    """

    def __init__(
        self,
        detail: str,
        *,
        status_code: int = 400,
        code: str = "bad_request",
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if not 400 <= status_code <= 599:
            raise ValueError(
                f"an ActionError answers an error: status_code {status_code} is not 4xx or 5xx"
            )
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code
        self.code = code
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, Any] = dict(extra or {})

    def body(self) -> dict[str, Any]:
        """The JSON body this error is answered with."""
        return {"error": self.code, "detail": self.detail, **self.extra}


def challenge(realm: str, **params: str) -> dict[str, str]:
    """The ``WWW-Authenticate`` header of a Bearer challenge (RFC 6750 section 3)."""
    # Every value here is ours (the realm is checked when the app is built,
    # scopes match the scope grammar): none needs escaping beyond the quotes.
    fields = ", ".join(f'{name}="{value}"' for name, value in {"realm": realm, **params}.items())
    return {"WWW-Authenticate": f"Bearer {fields}"}


def missing_token(realm: str) -> ActionError:
    return ActionError(
        "this action needs a bearer token: send `Authorization: Bearer <token>`",
        status_code=401,
        code="unauthorized",
        headers=challenge(realm),
    )


def ambiguous_credentials(realm: str) -> ActionError:
    return ActionError(
        "send exactly one Authorization header",
        status_code=400,
        code="invalid_request",
        headers=challenge(realm, error="invalid_request"),
    )


def invalid_token(realm: str, reason: str | None) -> ActionError:
    detail = _REASONS.get(reason, "the bearer token is not valid")
    return ActionError(
        detail,
        status_code=401,
        code="invalid_token",
        headers=challenge(realm, error="invalid_token", error_description=detail),
    )


def insufficient_scope(
    realm: str, required: Collection[str], missing: Collection[str]
) -> ActionError:
    return ActionError(
        f"this action needs the scopes {', '.join(required)}; the token lacks {', '.join(missing)}",
        status_code=403,
        code="insufficient_scope",
        headers=challenge(realm, error="insufficient_scope", scope=" ".join(required)),
        extra={"required_scopes": list(required), "missing_scopes": list(missing)},
    )


def auth_unavailable() -> ActionError:
    return ActionError(
        "the token could not be checked: the auth service is unavailable; retry shortly",
        status_code=503,
        code="auth_unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def payload_too_large(limit: int) -> ActionError:
    return ActionError(
        f"the request body is over {limit} bytes",
        status_code=413,
        code="payload_too_large",
    )
