"""The server's domain records: a token as stored, an audit entry, who acted, and the clock.

Plain frozen dataclasses, shared by the store (which reads and writes them),
the commands (which decide on them), the caches and the routes (which
answer with them). The tables they are stored in are in
:mod:`amplify_auth_server.tables`; their wire shapes in
:mod:`amplify_auth_server.schemas`; the rules for each field in
:mod:`amplify_auth_client.contract`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from amplify_auth_client.contract import TokenStatus, new_token_id, status_of

#: The server's one wall clock, in seconds since the epoch: what every time it
#: writes (:func:`utcnow`) and every expiry validation judges are read from.
#: One seam, so that a test moves the whole server's time by replacing it.
wall_time: Callable[[], float] = time.time


def utcnow() -> datetime:
    """The server's wall clock: every time it writes is this, in UTC."""
    return datetime.fromtimestamp(wall_time(), UTC)


SYSTEM_ACTOR: Final = "system"
#: The actor of a failed admin authentication that presented no known token.
ANONYMOUS_ACTOR: Final = "anonymous"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as stored: everything but the secret, which is never stored."""

    id: str
    token_hash: str
    name: str
    scopes: tuple[str, ...]
    description: str | None
    metadata: dict[str, str] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    version: int
    created_by: str | None
    #: The team or service the token belongs to; None: no owner.
    owner: str | None = None
    #: When a validation last answered it valid (see amplify_auth_server.usage);
    #: None: never. Not validation state: no version bump, no cache learns it.
    last_used_at: datetime | None = None
    #: Rotation: the successor of a rotated token, and the token a successor replaced.
    replaced_by: str | None = None
    rotated_from: str | None = None
    #: A rotated token's idle limit: revoked once unused this many seconds.
    finish_when_idle_seconds: int | None = None

    @classmethod
    def new(
        cls,
        *,
        token_hash: str,
        name: str,
        scopes: tuple[str, ...],
        created_by: str,
        now: datetime,
        expires_at: datetime | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        owner: str | None = None,
        rotated_from: str | None = None,
    ) -> TokenRecord:
        """A token about to be inserted: a fresh id, version 1, not revoked."""
        return cls(
            id=new_token_id(),
            token_hash=token_hash,
            name=name,
            scopes=scopes,
            description=description,
            metadata=metadata,
            created_at=now,
            expires_at=expires_at,
            revoked_at=None,
            version=1,
            created_by=created_by,
            owner=owner,
            rotated_from=rotated_from,
        )

    def idle_in_grace(self, now: datetime, rotated_at: datetime) -> bool:
        """Whether this rotated token's grace ends now: it is still valid, and has gone
        unused for its ``finish_when_idle_seconds`` since its last use or its rotation
        (``rotated_at``: its successor's creation), whichever came later.

        Counted from the rotation at the earliest: a token rotated before
        anyone used it (or before its first use was written down) still
        gets that long to show that it is in use.
        """
        idle = self.finish_when_idle_seconds
        if idle is None or self.replaced_by is None or self.status(now) != "active":
            return False
        since = rotated_at if self.last_used_at is None else max(self.last_used_at, rotated_at)
        return now - since >= timedelta(seconds=idle)

    def status(self, now: datetime) -> TokenStatus:
        return status_of(self.revoked_at, self.expires_at, now)

    @classmethod
    def from_row(cls, row: Any) -> TokenRecord:
        return cls(
            id=row.id,
            token_hash=row.token_hash,
            name=row.name,
            scopes=tuple(row.scopes),
            description=row.description,
            metadata=row.metadata,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            version=row.version,
            created_by=row.created_by,
            owner=row.owner,
            last_used_at=row.last_used_at,
            replaced_by=row.replaced_by,
            rotated_from=row.rotated_from,
            finish_when_idle_seconds=row.finish_when_idle_seconds,
        )


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    actor_id: str
    actor_name: str | None
    action: str
    token_id: str | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a change: an admin token, a delegated one, or the server itself."""

    id: str
    name: str | None = None
    #: The actor token's scopes and owner, and when it expires: what
    #: :mod:`amplify_auth_server.authz` decides on.
    scopes: tuple[str, ...] = ()
    owner: str | None = None
    expires_at: datetime | None = None


SYSTEM = Actor(SYSTEM_ACTOR, "amplify-auth-server")


@dataclass(frozen=True, slots=True)
class PendingWebhook:
    """One webhook delivery claimed from the outbox (:mod:`amplify_auth_server.webhooks`):
    the event's webhook-id, where it goes, the exact body to sign, and how many
    attempts this one makes (counting it)."""

    id: str
    url: str
    type: str
    body: str
    created_at: datetime
    attempts: int
