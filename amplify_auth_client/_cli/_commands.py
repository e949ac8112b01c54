"""What each ``auth-cli`` command does: the parsed arguments and a client in, a result out.

No printing here: :mod:`._main` prints a result as JSON (:func:`to_json`)
or hands it to a renderer, which draws each kind of result its own way.
Each command takes an :class:`~amplify_auth_client.AuthClient`, so it works
against any server the client can reach, FakeAuthServer's included.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from amplify_auth_client._client import AuthClient
from amplify_auth_client._models import (
    AuditEntry,
    BulkRevocation,
    CreatedToken,
    RotatedToken,
    TokenInfo,
)

#: How much of a token's audit trail ``info`` shows, newest first.
AUDIT_LIMIT: Final = 20


@dataclass(frozen=True, slots=True)
class TokenList:
    """What ``list`` shows: one page of tokens, whether revoked and expired ones were asked
    for, and the cursor of the next page (None on the last)."""

    tokens: tuple[TokenInfo, ...]
    include_all: bool
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class TokenDetail:
    """What ``info`` shows: the token, and the latest lines of its audit trail."""

    token: TokenInfo
    audit: tuple[AuditEntry, ...]


@dataclass(frozen=True, slots=True)
class Changed:
    """What ``revoke`` and ``extend`` show: the token as it is now, and what was done."""

    token: TokenInfo
    verb: str


@dataclass(frozen=True, slots=True)
class Revocations:
    """What ``revoke`` shows for several ids (``outcome``), or for filters (no outcome)."""

    count: int
    outcome: BulkRevocation | None


Result = CreatedToken | TokenList | TokenDetail | Changed | Revocations
Command = Callable[[argparse.Namespace, AuthClient], Result]


def create(args: argparse.Namespace, client: AuthClient) -> CreatedToken:
    """Mint a token; ``--ttl`` unset never expires. The result holds the raw token."""
    return client.create_token(args.name, list(args.scopes), ttl_days=args.ttl, owner=args.owner)


def list_tokens(args: argparse.Namespace, client: AuthClient) -> TokenList:
    """A page of tokens, newest first: active ones; with ``--all``, every state."""
    page = client.list_tokens(
        include_revoked=args.all,
        name=args.name,
        scope=args.scope,
        expires_within_days=args.expiring_within,
        owner=args.owner,
        unused_for_days=args.unused_for,
        used_within_days=args.used_within,
        limit=args.limit,
        cursor=args.cursor,
    )
    return TokenList(page.items, args.all, page.next_cursor)


def info(args: argparse.Namespace, client: AuthClient) -> TokenDetail:
    """One token and its audit trail (the ``AUDIT_LIMIT`` latest entries)."""
    token = client.get_token(args.token_id)
    return TokenDetail(token, tuple(client.token_audit(args.token_id, limit=AUDIT_LIMIT)))


def revoke(args: argparse.Namespace, client: AuthClient) -> Changed | Revocations:
    """Revoke tokens now: one (its record after), several ids, or every active token
    matching the filters; revoking a revoked token changes nothing and succeeds."""
    if filtered(args):
        count = client.revoke_where(
            name=args.name,
            scope=args.scope,
            expires_within_days=args.expiring_within,
            owner=args.owner,
            unused_for_days=args.unused_for,
        )
        return Revocations(count, None)
    if len(args.token_ids) == 1:
        return Changed(client.revoke_token(args.token_ids[0]), "Revoked")
    outcome = client.revoke_tokens(args.token_ids)
    return Revocations(len(outcome.revoked), outcome)


def filtered(args: argparse.Namespace) -> bool:
    """Whether ``revoke`` was given filters rather than ids."""
    return any(
        getattr(args, option, None) is not None
        for option in ("name", "scope", "expiring_within", "owner", "unused_for")
    )


def extend(args: argparse.Namespace, client: AuthClient) -> Changed:
    """Push a token's expiry ``--days`` further (refused for revoked or endless tokens)."""
    return Changed(client.extend_token(args.token_id, args.days), "Extended")


def rotate(args: argparse.Namespace, client: AuthClient) -> RotatedToken:
    """Replace a token: the result holds the new raw token, and the old token as left."""
    return client.rotate_token(
        args.token_id,
        grace_seconds=args.grace,
        finish_when_idle_seconds=args.finish_when_idle,
    )


#: Every command, by the name typed on the command line.
COMMANDS: Final[Mapping[str, Command]] = {
    "create": create,
    "list": list_tokens,
    "info": info,
    "revoke": revoke,
    "extend": extend,
    "rotate": rotate,
}

# The options that become request fields, and the fields' names.
_SENT: Final = {
    "name": "name",
    "scopes": "scopes",
    "ttl": "ttl_days",
    "owner": "owner",
    "token_id": "token_id",
    "token_ids": "token_id",
    "days": "days",
    "grace": "grace_seconds",
    "finish_when_idle": "finish_when_idle_seconds",
}


def sent(args: argparse.Namespace) -> dict[str, object]:
    """The request's fields, as the command sends them, for an error to name the option
    the server refused."""
    return {field: getattr(args, option) for option, field in _SENT.items() if option in args}


def to_json(result: Result) -> Any:
    """``result`` as JSON-ready data, shaped like the HTTP API's bodies.

    A :class:`TokenDetail` becomes the token's fields plus ``"audit"``, so
    that ``.status`` reads the same in ``info`` as in ``revoke``.
    """
    if isinstance(result, TokenDetail):
        return {**_plain(result.token), "audit": [_plain(entry) for entry in result.audit]}
    if isinstance(result, TokenList):
        return [_plain(token) for token in result.tokens]
    if isinstance(result, Changed):
        return _plain(result.token)
    if isinstance(result, RotatedToken):
        # As the API's answer has it: the successor's fields, then the old token's.
        return {**_plain(result), "rotated_from": result.rotated_from}
    if isinstance(result, Revocations):
        if result.outcome is None:
            return {"revoked_count": result.count}
        return {"revoked_count": result.count, **_plain(result.outcome)}
    return _plain(result)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # fields() rather than asdict(): asdict deep-copies, and CreatedToken
        # keeps the raw token out of repr, not out of its fields.
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime | date):  # a usage day is a date, as the API writes it
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(key): _plain(item) for key, item in value.items()}
    return value
