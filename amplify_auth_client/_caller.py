"""``Caller``: who a validated request comes from, as every integration hands it over.

Framework-free and frozen, so that ``StatelessService``, the FastAPI
dependency, the ASGI middleware, Django, Flask and gRPC give a handler the
same object, and no part of a request can change what another part sees. It
never holds the raw token: a handler that logs its caller logs an id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from amplify_auth_client.contract import missing_scopes

if TYPE_CHECKING:
    from amplify_auth_client._models import ValidationResult


@dataclass(frozen=True, slots=True)
class Caller:
    """Who called a protected action: the token's id, its name, every scope it holds
    and its owner (the team or service it belongs to, when it has one).

    ``scopes`` are all of the token's scopes, not only the ones the action
    required, so a handler can make finer decisions itself:

    >>> caller = Caller(token_id="tok_0123456789abcdef", name="reporting", scopes=("read",))
    >>> caller.has_scopes("read"), caller.has_scopes("read", "write")
    (True, False)

    ``stale`` is True when the auth service could not be reached and the
    action's ``on_outage="serve_cached"`` let a recently valid answer through
    (see :class:`~amplify_auth_client.Policy`): a handler may then decline
    what it would not do on a stale word, or say so in its answer.
    """

    token_id: str
    name: str
    scopes: tuple[str, ...]
    #: When the token stops working; None when it never expires.
    expires_at: datetime | None = None
    #: Served from a cached answer while the auth service was unreachable.
    stale: bool = False
    #: The team or service the token belongs to; None when it has no owner.
    owner: str | None = None
    #: A rotated token in its grace period: the id of its successor, which the
    #: caller should move to (worth a log line). None otherwise.
    replaced_by: str | None = None

    def has_scopes(self, *scopes: str) -> bool:
        """Whether the token holds every one of ``scopes``."""
        return not missing_scopes(self.scopes, scopes)

    @classmethod
    def from_result(cls, result: ValidationResult) -> Caller | None:
        """The caller a positive validation names; None if it does not name one whole."""
        if not result.valid or result.token_id is None or result.name is None:
            return None
        return cls(
            token_id=result.token_id,
            name=result.name,
            scopes=result.scopes,
            expires_at=result.expires_at,
            stale=result.stale,
            owner=result.owner,
            replaced_by=result.replaced_by,
        )
