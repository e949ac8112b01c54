"""``auth-cli``'s exit codes, and the one line it prints for each error.

=====  ===============================================================
code   meaning
=====  ===============================================================
0      done
1      not done, for another reason: revoke declined, a token whose
       state forbids the change (409), an unexpected error
2      usage: arguments refused by auth-cli or by the server (400/422),
       or revoke without ``--yes`` and without a terminal to ask on
3      the auth service is unavailable: unreachable, timed out, a
       server error (5xx), or no auth API at that URL
4      not allowed: no admin token, a token the server refuses (401),
       one holding neither ``admin`` nor ``tokens:manage`` (403), or a
       delegated token asking beyond its owner, scopes or expiry (403)
5      no token has this id, or none this token may manage (404)
130    interrupted (Ctrl-C)
=====  ===============================================================

The SDK's messages end with hints for code (``pass admin_token=``); the ones
here say what to type instead. No message is built from a token's value:
the server never echoes one and the SDK scrubs what it sent.
"""

from __future__ import annotations

from typing import Final

from amplify_auth_client._exceptions import (
    AdminPermissionDenied,
    AdminTokenInvalid,
    AuthConfigError,
    AuthError,
    AuthRequestError,
    AuthServiceUnavailable,
    InvalidRequest,
    TokenConflict,
    TokenNotFound,
)

OK: Final = 0
FAILED: Final = 1
USAGE: Final = 2
UNAVAILABLE: Final = 3
NOT_ALLOWED: Final = 4
NOT_FOUND: Final = 5
INTERRUPTED: Final = 130

# The request fields the CLI's options fill, named as the user typed them.
_OPTIONS: Final = {
    "name": "NAME",
    "scopes": "--scopes",
    "ttl_days": "--ttl",
    "days": "--days",
    "owner": "--owner",
}


class CLIError(Exception):
    """An error with its exit code and the one line to print; raised by the CLI itself."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _where(exc: AuthRequestError) -> str:
    return "" if exc.status_code is None else f" (HTTP {exc.status_code})"


def _fields(exc: AuthRequestError, sent: dict[str, object]) -> str:
    """The server's complaints per field, named by option, with the value when it is one scope."""
    parts = []
    for error in exc.errors:
        loc = [part for part in error.get("loc", ()) if part != "body"]
        field = str(loc[0]) if loc else ""
        option = _OPTIONS.get(field, field or "request")
        value = sent.get(field)
        if len(loc) > 1 and isinstance(loc[1], int) and isinstance(value, list | tuple):
            option = f"{option} {value[loc[1]]!r}"
        parts.append(f"{option}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def explain(exc: AuthError, *, url: str, token_source: str, sent: dict[str, object]) -> CLIError:
    """The SDK's error ``exc`` as the CLI reports it: one line, and an exit code.

    ``token_source`` says where the admin token came from (never its value);
    ``sent`` holds the command's arguments by request field (and
    ``token_id``), to name the option the server refused.
    """
    if isinstance(exc, AuthServiceUnavailable):
        cause = exc.__cause__
        if exc.status_code is None and cause is not None:
            return CLIError(
                f"cannot reach the auth service at {url} ({type(cause).__name__}: {cause}): "
                "check that it runs and that --auth-url (or AUTH_URL) is right, or retry later",
                UNAVAILABLE,
            )
        return CLIError(f"no usable answer from the auth service at {url}: {exc}", UNAVAILABLE)
    if isinstance(exc, AdminTokenInvalid):
        return CLIError(
            f"{exc.detail}{_where(exc)}; admin token from {token_source}: pass --admin-token "
            "or set AUTH_ADMIN_TOKEN to an active token holding the admin scope",
            NOT_ALLOWED,
        )
    if isinstance(exc, AdminPermissionDenied) and exc.beyond_delegation:
        return CLIError(
            f"{exc.detail}{_where(exc)}; admin token from {token_source} is a delegated "
            "one (tokens:manage): it manages its own owner's tokens, within its own scopes "
            "and expiry",
            NOT_ALLOWED,
        )
    if isinstance(exc, AdminPermissionDenied):
        return CLIError(
            f"{exc.detail}{_where(exc)}; admin token from {token_source}: "
            "use a token holding the admin scope, or tokens:manage and an owner",
            NOT_ALLOWED,
        )
    if isinstance(exc, TokenNotFound) and "token_id" not in sent:
        # A 404 for a call that names no token: the URL is not the auth API's.
        return CLIError(
            f"the server at {url} has no auth API there ({exc.detail}{_where(exc)}): "
            "check --auth-url (or AUTH_URL); it is the server's base URL, e.g. http://auth:8000",
            UNAVAILABLE,
        )
    if isinstance(exc, TokenNotFound):
        return CLIError(
            f"{exc.detail}{_where(exc)}: `auth-cli list --all` shows every token "
            "this admin token may manage",
            NOT_FOUND,
        )
    if isinstance(exc, InvalidRequest):
        fields = _fields(exc, sent)
        return CLIError(fields + _where(exc) if fields else exc.detail + _where(exc), USAGE)
    if isinstance(exc, TokenConflict):
        return CLIError(f"{exc.detail}{_where(exc)}: `auth-cli info ID` shows its state", FAILED)
    if isinstance(exc, AuthConfigError):
        # The SDK names its arguments; say which option to change instead.
        message = (
            str(exc).replace("base_url", "--auth-url").replace("admin_token", "the admin token")
        )
        return CLIError(message, USAGE)
    return CLIError(str(exc), FAILED)
