"""Where ``auth-cli`` finds the server and the admin token, from the command line or the shell.

The server's URL: ``--auth-url``, else env ``AUTH_URL`` (the CLI's own, as
the seed names it), else env ``AUTH_SERVICE_URL`` (the SDK's, so that a
shell set up for the SDK needs nothing more), else ``http://localhost:8000``.

The admin token: ``--admin-token``, else env ``AUTH_ADMIN_TOKEN``, else the
file the embedded server mints beside its SQLite database
(``amplify_auth.admin-token``), so that the quick start needs no secret
handling. That file is read only when the server is on this machine: its
token is this machine's server's admin token, and sending it to any other
host would hand that host the keys.

Where that file is, the server and the CLI both ask the contract
(:func:`amplify_auth_client.contract.admin_token_file`).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from amplify_auth_client import contract
from amplify_auth_client._cli._errors import USAGE, CLIError

DEFAULT_AUTH_URL: Final = "http://localhost:8000"
ENV_AUTH_URLS: Final = ("AUTH_URL", "AUTH_SERVICE_URL")
ENV_ADMIN_TOKEN: Final = "AUTH_ADMIN_TOKEN"

# The server's settings that place the file (amplify_auth_server.config).
_ENV_ADMIN_TOKEN_FILE: Final = "ADMIN_TOKEN_FILE"
_ENV_DATABASE_URL: Final = "DATABASE_URL"


def _env(name: str) -> str | None:
    # Exported but empty means unset, as the SDK and the server read it.
    return os.environ.get(name, "").strip() or None


def auth_url(option: str | None) -> str:
    """The server's base URL: the option, the environment, or the default.

    Checked here, before the admin token is looked for: a URL that is not
    one would otherwise be reported as "not on this machine", or worse, be
    taken for a host to send the token to.
    """
    url = option or next(filter(None, map(_env, ENV_AUTH_URLS)), DEFAULT_AUTH_URL)
    if not url.startswith(("http://", "https://")):
        # Not echoed whole: a misplaced secret is a classic thing to find here.
        raise CLIError(
            f"--auth-url must start with http:// or https:// (got a value starting with "
            f"{url[:8]!r}); e.g. {DEFAULT_AUTH_URL}",
            USAGE,
        )
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        host = ""
    if not host:
        raise CLIError(f"--auth-url is not a URL with a host; e.g. {DEFAULT_AUTH_URL}", USAGE)
    return url


def shown_url(url: str) -> str:
    """``url`` as messages show it: without credentials, query or fragment.

    ``http://user:password@host/?key=...`` is a valid ``--auth-url``, and an
    error line ends up in terminals, CI logs and bug reports.
    """
    parsed = httpx.URL(url)  # auth_url() has parsed it already
    return str(parsed.copy_with(username=None, password=None, query=None, fragment=None))


def admin_token_file() -> Path | None:
    """Where the embedded server, started from this directory and environment, keeps its token.

    >>> admin_token_file()  # no DATABASE_URL, no ADMIN_TOKEN_FILE  # doctest: +SKIP
    PosixPath('amplify_auth.admin-token')

    None when ``DATABASE_URL`` names PostgreSQL: that server mints no file.
    """
    return contract.admin_token_file(_env(_ENV_DATABASE_URL), _env(_ENV_ADMIN_TOKEN_FILE))


def is_local(url: str) -> bool:
    """Whether ``url`` points at this machine (``localhost`` or a loopback address)."""
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class AdminToken:
    """The admin token to send, and where it came from (for error messages: never the value)."""

    value: str | None
    source: str


def admin_token(option: str | None, url: str) -> AdminToken:
    """The admin token for ``url``: the option, env, or (for a local server) the token file.

    ``value`` is None when none was found; ``source`` then says where the
    CLI looked, so that the error can say what to do.
    """
    if option:
        return AdminToken(option, "--admin-token")
    value = _env(ENV_ADMIN_TOKEN)
    if value is not None:
        return AdminToken(value, ENV_ADMIN_TOKEN)
    path = admin_token_file()
    if path is None:
        return AdminToken(None, f"no --admin-token, no {ENV_ADMIN_TOKEN}")
    if not is_local(url):
        return AdminToken(
            None,
            f"no --admin-token, no {ENV_ADMIN_TOKEN}; the admin token file ({path}) "
            "is only sent to a server on this machine",
        )
    try:
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = "not found" if isinstance(exc, FileNotFoundError) else type(exc).__name__
        return AdminToken(None, f"no --admin-token, no {ENV_ADMIN_TOKEN}, no {path} ({reason})")
    return AdminToken(value or None, f"the admin token file {path}")
