"""What every console response carries, and what every console form must.

* :class:`ConsoleHeaders`: the CSP (scripts and styles from this origin only,
  no inline script, ``frame-ancestors 'none'``), ``nosniff``,
  ``no-referrer`` and ``no-store`` on every response, redirects and errors
  included: a page that showed a token must not come back from a cache, and
  the back button after sign-out must show nothing.
* :func:`read_form`: a form body (``application/x-www-form-urlencoded``,
  the only kind the console's forms send), and :func:`check_csrf`, the
  session's CSRF token compared in constant time.
* :func:`set_cookie`: ``HttpOnly``, ``SameSite=Strict``, ``Secure`` over
  HTTPS or when ``CONSOLE_SECURE_COOKIES`` says the server is behind a TLS proxy.
"""

from __future__ import annotations

import hmac
from typing import Final
from urllib.parse import parse_qsl, urlencode

from fastapi import Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amplify_auth_server.errors import AuthServerError, UnsupportedMediaType

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS: Final = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
)
_OURS: Final = frozenset(name for name, _ in HEADERS)
#: Form fields and their values the console reads at most (the server's body cap
#: bounds bytes; this bounds the work of parsing them).
MAX_FIELDS: Final = 1000


class ConsoleHeaders:
    """Pure ASGI: :data:`HEADERS` on every response, and blank query values dropped.

    A filter form sends its empty fields (``?name=&scope=``); a blank field
    means no filter, so it is dropped before the routes' own checks see it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["query_string"]:
            pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
            kept = [(name, value) for name, value in pairs if value.strip()]
            if len(kept) < len(pairs):
                scope = {**scope, "query_string": urlencode(kept).encode("latin-1")}

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] not in _OURS]
                message = {**message, "headers": [*headers, *HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


class FormRefused(AuthServerError):
    """A state-changing request without this session's CSRF token: nothing changes."""

    status_code = 403
    code = "csrf_failed"
    default_detail = (
        "This form did not come from your console session (or the session changed): "
        "nothing was changed. Reload the page and try again."
    )


async def read_form(request: Request) -> dict[str, list[str]]:
    """The request's form fields, each with its values in order."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    raw = await request.body()
    if not raw:
        return {}  # no fields, so no CSRF token either: refused by check_csrf
    if media != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType(
            "the console's forms are sent as application/x-www-form-urlencoded"
        )
    body = raw.decode("utf-8", errors="replace")
    fields: dict[str, list[str]] = {}
    for name, value in parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FIELDS):
        fields.setdefault(name, []).append(value)
    return fields


def field(form: dict[str, list[str]], name: str) -> str:
    """A form field's one value, stripped; empty when absent."""
    values = form.get(name)
    return values[0].strip() if values else ""


def check_csrf(form: dict[str, list[str]], expected: str) -> None:
    """:class:`FormRefused` unless the form carries ``expected``."""
    given = field(form, "csrf")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise FormRefused()


def secure(request: Request, forced: bool) -> bool:
    """Whether cookies get ``Secure``: over HTTPS, or when the setting forces it."""
    return forced or request.url.scheme == "https"


def set_cookie(
    response: Response, request: Request, name: str, value: str, *, forced_secure: bool
) -> None:
    response.set_cookie(
        name,
        value,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=secure(request, forced_secure),
    )


def clear_cookie(response: Response, request: Request, name: str, *, forced_secure: bool) -> None:
    response.delete_cookie(
        name,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=secure(request, forced_secure),
    )
