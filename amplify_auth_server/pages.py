"""Listing a page at a time: what a listing filters on, and the cursor to the next page.

Pages are keyset-paged, newest first: tokens by ``(created_at, id)``, audit
entries by ``id``, both never changing once written. A page is the rows
strictly after its cursor's position, so every page costs the same at any
depth (no ``OFFSET``), and paging through while tokens are created or
revoked never repeats a row and never skips one that existed before the
first page and still matches.

A cursor is opaque to clients (see
:class:`amplify_auth_client.contract.Cursors`): signed with this
installation's id, which every replica shares, and bound to its filters. A
cursor that was tampered with, truncated, made by another deployment or for
other filters is refused with 422, never taken for the first page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final

from amplify_auth_client import contract
from amplify_auth_client.contract import ListStatus, iso
from amplify_auth_server.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class TokenFilter:
    """What a token listing (or a bulk revocation) holds: every condition at once."""

    status: ListStatus = "active"
    #: A name prefix, whatever its case.
    name: str | None = None
    #: A scope the token holds.
    scope: str | None = None
    #: Tokens that expire within this many days (and have not expired, unless
    #: ``status`` says otherwise).
    expires_within_days: int | None = None
    #: Tokens of this owner (a delegated admin's listings always have it).
    owner: str | None = None
    #: Tokens not used for this many days (never used counts as unused).
    unused_for_days: int | None = None
    #: Tokens used within this many days.
    used_within_days: int | None = None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What an audit listing holds."""

    token_id: str | None = None
    action: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: Entries about this owner's tokens (a delegated admin's audit log).
    owner: str | None = None


#: A token's place in the listing order, or an audit entry's.
TokenPosition = tuple[datetime, str]
AuditPosition = int


class Cursors:
    """The listing cursors of this installation (``key``: its id), on the contract's
    :class:`~amplify_auth_client.contract.Cursors`, which ``FakeAuthServer`` shares."""

    def __init__(self, key: bytes) -> None:
        self._cursors = contract.Cursors(key)

    def _read(self, cursor: str, kind: str, filters: object) -> list[Any]:
        try:
            return self._cursors.read(cursor, kind, _fields(filters))
        except ValueError as exc:
            raise InvalidInput(
                f"the cursor cannot be used: {exc}; start again without one",
                errors=[
                    {"loc": ["query", "cursor"], "msg": "Invalid cursor", "type": "cursor_invalid"}
                ],
            ) from None

    def tokens(self, position: TokenPosition, filters: TokenFilter) -> str:
        created_at, token_id = position
        return self._cursors.make("tokens", [iso(created_at), token_id], _fields(filters))

    def token_position(self, cursor: str, filters: TokenFilter) -> TokenPosition:
        created_at, token_id = self._read(cursor, "tokens", filters)
        return datetime.fromisoformat(created_at), str(token_id)

    def audit(self, position: AuditPosition, filters: AuditFilter) -> str:
        return self._cursors.make("audit", [position], _fields(filters))

    def audit_position(self, cursor: str, filters: AuditFilter) -> AuditPosition:
        (entry_id,) = self._read(cursor, "audit", filters)
        return int(entry_id)


def _fields(filters: object) -> dict[str, Any]:
    # Filters added later are left out when unset (owner, the usage filters),
    # so that cursors made before they existed still work.
    return {
        name: iso(value) if isinstance(value, datetime) else value
        for name, value in asdict(filters).items()  # type: ignore[call-overload]
        if not (name in _LATER and value is None)
    }


_LATER: Final = frozenset({"owner", "unused_for_days", "used_within_days"})
