"""The server's error tree, and how each error looks on the wire.

Split by what the caller can do about it::

    AuthServerError                  {"error": code, "detail": message}
    ├── TokenInUrl           400     send the token in a header or body, not the URL
    ├── InvalidInput         422     fix the request (never echoes the input)
    │   └── IdempotencyKeyReused         send a new Idempotency-Key for another body
    ├── (payload_too_large)  413     send less; raised as Starlette's HTTPException,
    │                                the one error FastAPI lets out of body parsing
    ├── UnsupportedMediaType 415     send the body as application/json
    ├── Unauthorized         401     send a valid admin token
    ├── Forbidden            403     use a token with the admin (or tokens:manage) scope
    │   └── BeyondDelegation 403     a delegated admin asked for more than it holds
    ├── NotFound             404     check the token id
    ├── Conflict             409     the token's state forbids this change
    └── ServiceUnavailable   503     retry later
        ├── DatabaseUnavailable
        └── ShuttingDown

Messages never contain a raw token: none of these errors is built from one.
:func:`render` puts ours and Starlette's own (unknown route, wrong method,
body too large) in that one shape, for the exception handlers of
:mod:`amplify_auth_server.routes.errors` and for the pure ASGI middleware,
which answer before any handler runs.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

import orjson
from starlette.exceptions import HTTPException

if TYPE_CHECKING:
    from fastapi import FastAPI


class AuthServerError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_detail: ClassVar[str] = "internal error"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        self.detail = detail or self.default_detail
        self.headers = headers or {}
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail}

    def json(self) -> bytes:
        return orjson.dumps(self.body())


class TokenInUrl(AuthServerError):
    status_code = 400
    code = "token_in_url"
    default_detail = (
        "a token does not belong in a URL, where logs and proxies keep it (RFC 6750 "
        "section 5.3): send it in the Authorization header or the JSON body, and "
        "consider this one exposed"
    )


class InvalidInput(AuthServerError):
    status_code = 422
    code = "invalid_request"
    default_detail = "the request body does not match the schema"

    def __init__(self, detail: str | None = None, *, errors: list[dict[str, Any]] | None = None):
        super().__init__(detail)
        self.errors = errors or []

    def body(self) -> dict[str, Any]:
        return {**super().body(), "errors": self.errors}


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"
    default_detail = (
        "this Idempotency-Key was sent earlier with another body: a key names one create; "
        "send a new key for a new create"
    )

    def __init__(self) -> None:
        # The key itself is never echoed: it may be something its sender keeps secret.
        super().__init__(
            errors=[
                {
                    "loc": ["header", "Idempotency-Key"],
                    "msg": "Used earlier with another body",
                    "type": "idempotency_key_reused",
                }
            ]
        )


class UnsupportedMediaType(AuthServerError):
    status_code = 415
    code = "unsupported_media_type"
    default_detail = "send the body as JSON, with Content-Type: application/json"


class Unauthorized(AuthServerError):
    status_code = 401
    code = "unauthorized"
    default_detail = (
        "management needs an admin token: send `Authorization: Bearer <token>` "
        "with a token holding the admin scope"
    )

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="amplify-auth"'})


class Forbidden(AuthServerError):
    status_code = 403
    code = "forbidden"
    default_detail = "this token lacks the admin (or tokens:manage) scope that management requires"


class BeyondDelegation(Forbidden):
    """A delegated admin (``tokens:manage``) asked for what its delegation does not
    cover: another owner, a scope it does not hold, an expiry past its own.
    ``code`` says which, for the SDK and the CLI to explain."""

    def __init__(self, detail: str, *, code: str) -> None:
        super().__init__(detail)
        self.reason = code

    def body(self) -> dict[str, Any]:
        return {"error": self.reason, "detail": self.detail}


class NotFound(AuthServerError):
    status_code = 404
    code = "not_found"
    default_detail = "no such token"

    @classmethod
    def token(cls, token_id: str) -> NotFound:
        return cls(f"no token with id {token_id!r}")


class Conflict(AuthServerError):
    status_code = 409
    code = "conflict"


class ServiceUnavailable(AuthServerError):
    status_code = 503
    code = "unavailable"
    default_detail = "the auth service cannot answer right now; retry shortly"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class DatabaseUnavailable(ServiceUnavailable):
    default_detail = "the token database is unreachable; retry shortly"


class ShuttingDown(ServiceUnavailable):
    default_detail = "the server is shutting down; retry on another replica"


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def field_errors(errors: Sequence[Any], known: Collection[str]) -> list[dict[str, Any]]:
    """pydantic's errors without their ``input``: the location, message and type only.

    FastAPI's default 422 body echoes each invalid value back; for a token
    field that would put a secret in a response (and in any log that
    records responses). Locations are kept only where they are names this
    API defines (``known``) or list positions: a metadata key, or the name
    of a field the API does not have, may be a pasted secret too, and is
    written ``*``.
    """
    return [
        {
            "loc": [p if isinstance(p, int) or p in known else "*" for p in e["loc"]],
            "msg": e["msg"],
            "type": e["type"],
        }
        for e in errors
    ]


#: Location parts that are no field's name, and never user input.
_LOCATIONS: Final = frozenset({"body", "query", "path", "header", "cookie", "[key]"})


def known_names(app: FastAPI) -> frozenset[str]:
    """Every name the API defines, from its OpenAPI document: parameters and fields.

    Computed once per app, on its first 422.
    """
    cached: frozenset[str] | None = getattr(app.state, "known_names", None)
    if cached is None:
        document = app.openapi()
        names = set(_LOCATIONS)
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                for parameter in operation.get("parameters", ()):
                    names.update((parameter["name"], parameter["name"].lower()))
        for schema in document.get("components", {}).get("schemas", {}).values():
            names.update(schema.get("properties", {}))
        cached = app.state.known_names = frozenset(names)
    return cached


def render(exc: AuthServerError | HTTPException) -> tuple[int, bytes, dict[str, str]]:
    """Status, JSON body and headers of an error: ours, or Starlette's own
    (unknown route, wrong method, body too large) put in our shape."""
    if isinstance(exc, AuthServerError):
        return exc.status_code, exc.json(), exc.headers
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    body = orjson.dumps({"error": code, "detail": str(exc.detail)})
    return exc.status_code, body, dict(exc.headers or {})
