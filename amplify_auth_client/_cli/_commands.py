"""What each ``auth-cli`` command does, as plain functions: a client in, data out.

No printing and no rich here: :mod:`._main` decides between JSON and
:mod:`._render`, and the tests call these functions too. Each takes an
:class:`~amplify_auth_client.AuthClient`, so it works against any server the
client can reach, FakeAuthServer's included.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from amplify_auth_client._client import AuthClient
from amplify_auth_client._models import AuditEntry, CreatedToken, TokenInfo

#: How much of a token's audit trail ``info`` shows, newest first.
AUDIT_LIMIT = 20


@dataclass(frozen=True, slots=True)
class TokenDetail:
    """What ``info`` shows: the token, and the latest lines of its audit trail."""

    token: TokenInfo
    audit: tuple[AuditEntry, ...]


def create(
    client: AuthClient, name: str, scopes: Sequence[str], ttl_days: int | None
) -> CreatedToken:
    """Mint a token; ``ttl_days=None`` never expires. The result holds the raw token."""
    return client.create_token(name, list(scopes), ttl_days=ttl_days)


def list_tokens(client: AuthClient, *, include_all: bool) -> list[TokenInfo]:
    """Active tokens, oldest first; with ``include_all``, revoked and expired ones too."""
    return client.list_tokens(include_revoked=include_all)


def info(client: AuthClient, token_id: str) -> TokenDetail:
    """One token and its audit trail (the ``AUDIT_LIMIT`` latest entries)."""
    token = client.get_token(token_id)
    return TokenDetail(token, tuple(client.token_audit(token_id, limit=AUDIT_LIMIT)))


def get(client: AuthClient, token_id: str) -> TokenInfo:
    """One token, as ``revoke`` shows it before asking for confirmation."""
    return client.get_token(token_id)


def revoke(client: AuthClient, token_id: str) -> TokenInfo:
    """Revoke a token now; revoking a revoked token changes nothing and succeeds."""
    return client.revoke_token(token_id)


def extend(client: AuthClient, token_id: str, days: int) -> TokenInfo:
    """Push a token's expiry ``days`` further (refused for revoked or endless tokens)."""
    return client.extend_token(token_id, days)


def to_json(value: CreatedToken | TokenInfo | TokenDetail | Sequence[TokenInfo]) -> Any:
    """``value`` as JSON-ready data, shaped like the HTTP API's bodies.

    A :class:`TokenDetail` becomes the token's fields plus ``"audit"``, so
    that ``.status`` reads the same in ``info`` as in ``revoke``.
    """
    if isinstance(value, TokenDetail):
        return {**_plain(value.token), "audit": [_plain(entry) for entry in value.audit]}
    if isinstance(value, CreatedToken | TokenInfo):
        return _plain(value)
    return [_plain(token) for token in value]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # fields() rather than asdict(): asdict deep-copies, and CreatedToken
        # keeps the raw token out of repr, not out of its fields.
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(key): _plain(item) for key, item in value.items()}
    return value
