"""The first admin token: from ``AUTH_ADMIN_TOKEN``, or minted into a 0600 file.

Management needs an admin token, and the quick start must not need any
secret handling. So:

* ``AUTH_ADMIN_TOKEN`` set: its hash is registered at every start-up, once
  (registering an already-known hash changes nothing; a revoked one stays
  revoked), named after the first 8 hex digits of its SHA-256, so that
  tokens set there at different times can be told apart in ``list``
  (``printf %s "$AUTH_ADMIN_TOKEN" | sha256sum | cut -c1-8`` names yours).
* Embedded default, no token set: the first start mints one and writes it
  to a file beside the SQLite database, created with mode 0600 and never
  overwritten; ``auth-cli`` reads it from there. Later starts register the
  file's token again (idempotently).
* Otherwise the server starts without one; ``amplify-auth-server
  create-admin-token`` mints one in the database.

The raw value is never logged: only the file's path is.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from amplify_auth_client.contract import (
    ADMIN_SCOPE,
    generate_token,
    hash_token,
    token_is_well_formed,
)
from amplify_auth_server.commands import CommandQueue, RegisterToken
from amplify_auth_server.config import Settings
from amplify_auth_server.models import SYSTEM

logger = logging.getLogger("amplify_auth_server.bootstrap")


def _read_or_mint(path: Path) -> str:
    token = generate_token()
    # Written whole to a private temporary file, then linked into place: a
    # second process starting at the same moment sees either no file or a
    # complete one, never an empty one; and link, unlike rename, never
    # replaces a file that is already there.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(token + "\n")
        os.link(temporary, path)
    except FileExistsError:
        return _read(path)
    finally:
        temporary.unlink()
    logger.info("minted an admin token into %s (mode 0600); read it from there", path)
    return token


def _read(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & 0o077:
        logger.warning(
            "%s can be read by other accounts (mode %o): chmod 600 it, and consider the "
            "token in it exposed",
            path,
            mode & 0o777,
        )
    token = path.read_text(encoding="ascii").strip()
    if not token_is_well_formed(token):
        raise RuntimeError(
            f"{path} does not hold a valid admin token. Delete it to have a new one minted; "
            "if it held a token once, revoke that token."
        )
    return token


def admin_token_name(raw: str) -> str:
    """The name an ``AUTH_ADMIN_TOKEN`` is registered under: the same for the same token.

    Eight hex digits of a SHA-256 tell nothing of the token (it has 220 bits
    of entropy, and event subscribers see whole hashes anyway).
    """
    return f"admin (AUTH_ADMIN_TOKEN sha256:{hash_token(raw)[:8]})"


async def register_admin_token(settings: Settings, queue: CommandQueue) -> None:
    if settings.auth_admin_token is not None:
        raw = settings.auth_admin_token.get_secret_value()
        source = "AUTH_ADMIN_TOKEN"
        name = admin_token_name(raw)
    else:
        path = settings.resolved_admin_token_file
        if path is None:
            logger.info(
                "no AUTH_ADMIN_TOKEN configured; mint an admin token with "
                "`amplify-auth-server create-admin-token`"
            )
            return
        raw = _read_or_mint(path)
        source, name = str(path), "admin (bootstrap)"
    record = await queue.submit(
        RegisterToken(
            actor=SYSTEM,
            token_hash=hash_token(raw),
            name=name,
            scopes=(ADMIN_SCOPE,),
        )
    )
    if record.revoked_at is not None:
        logger.warning("the admin token from %s is revoked; management will refuse it", source)
    else:
        logger.info("admin token from %s is registered as %s", source, record.id)
