"""What the clients return: frozen, slotted dataclasses, safe to share between threads.

Frozen because the validation cache hands the *same* :class:`ValidationResult`
object to every caller of a cache hit; nobody may change it under the others.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from amplify_auth_client.contract import Reason, TokenStatus

if TYPE_CHECKING:
    from amplify_auth_client._caller import Caller

__all__ = [
    "AuditEntry",
    "BulkRevocation",
    "CacheStats",
    "CreatedToken",
    "Page",
    "Reason",
    "RotatedToken",
    "SubscriptionState",
    "TokenInfo",
    "TokenStatus",
    "ValidationResult",
]

T = TypeVar("T")

#: Where a client's revocation subscription stands (see ``CacheStats.subscription``).
SubscriptionState = Literal["off", "idle", "connecting", "live", "unavailable"]


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The answer to "may this token do that?".

    Truthiness is validity, so ``if client.validate(token, ["write"]):`` reads as
    it means. Without ``__bool__`` a dataclass instance is always true, and that
    same line would let every caller in.

    >>> result = ValidationResult(valid=False, reason="unknown")
    >>> bool(result), result.reason
    (False, 'unknown')

    ``reason`` is None when valid (and, for a "not valid", only when the
    server's reason could not be read). ``scopes`` are the token's own (empty
    for unknown, revoked and expired tokens); ``missing_scopes`` are the
    required scopes it lacks, for ``reason="insufficient_scope"``. ``cached``
    says the answer came from the local cache, and ``stale`` that it came from
    a cache entry past its freshness, served only because the server was
    unreachable (``stale_if_error``). ``owner`` is the team or service the
    token belongs to (None: no owner, or a server older than owners).
    ``replaced_by`` is, for a rotated token still in its grace period, the
    id of the token that replaces it: a service may log that its caller
    should move on (None otherwise, and from a server older than rotation).
    ``caller`` is the
    :class:`~amplify_auth_client.Caller` a valid answer from the server
    names, built once per answer and shared by every cache hit (None for
    any other result).
    """

    valid: bool
    scopes: tuple[str, ...] = ()
    token_id: str | None = None
    name: str | None = None
    reason: Reason | None = None
    missing_scopes: tuple[str, ...] = ()
    expires_at: datetime | None = None
    cached: bool = False
    stale: bool = False
    owner: str | None = None
    replaced_by: str | None = None
    caller: Caller | None = field(default=None, init=False, repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.valid


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as management sees it: never the raw token, never its hash."""

    token_id: str
    name: str
    scopes: tuple[str, ...]
    status: TokenStatus
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    description: str | None
    metadata: Mapping[str, str] | None
    #: The team or service the token belongs to; None: no owner.
    owner: str | None = None
    #: When a validation last answered it valid, as the server wrote it down (its
    #: flush interval later, or an SDK's report interval more); None: never used.
    last_used_at: datetime | None = None
    #: Uses per UTC day over the last 30 days, oldest first: only from
    #: ``get_token`` (a listing leaves it empty).
    usage: tuple[UsageDay, ...] = ()
    #: Rotated: the id of the token that replaces this one.
    replaced_by: str | None = None
    #: A rotation's successor: the id of the token it replaced.
    rotated_from: str | None = None
    #: Rotated: the grace ends once this token goes unused this many seconds.
    finish_when_idle_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class UsageDay:
    """A token's uses on one UTC day, every server replica and SDK together."""

    day: date
    count: int


@dataclass(frozen=True, slots=True)
class CreatedToken:
    """A freshly minted token. ``token`` is the raw secret: shown once, store it now.

    It is left out of ``repr()`` so that logging or printing the object, or a
    traceback showing it, does not leak the secret.
    """

    token: str = field(repr=False)
    token_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    description: str | None
    metadata: Mapping[str, str] | None
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class RotatedToken(CreatedToken):
    """A rotation's successor, as a :class:`CreatedToken` (``token`` shown once), and
    ``previous``: the old token as the rotation left it, ``replaced_by`` this one
    and valid until its ``expires_at`` (or revoked, for a grace of 0)."""

    previous: TokenInfo = field(kw_only=True)

    @property
    def rotated_from(self) -> str:
        """The id of the token this one replaces."""
        return self.previous.token_id


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log: who (``actor_id``, an admin token's id) did what, when."""

    id: int
    at: datetime
    actor_id: str
    actor_name: str | None
    action: str
    token_id: str | None
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, newest first, and where the next one starts.

    Iterable, sized and indexable, so ``for token in client.list_tokens():``
    reads the page's items. ``next_cursor`` is None on the last page; otherwise pass it
    back as ``cursor=`` with the same filters (or let ``iter_tokens`` and
    ``iter_audit`` do it).

    >>> page = Page(items=("a", "b"), next_cursor=None)
    >>> len(page), list(page), page.last
    (2, ['a', 'b'], True)
    """

    items: tuple[T, ...]
    next_cursor: str | None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> T:
        return self.items[index]

    @property
    def last(self) -> bool:
        """Whether no page follows this one."""
        return self.next_cursor is None


@dataclass(frozen=True, slots=True)
class BulkRevocation:
    """What ``revoke_tokens`` did: the ids revoked now, those revoked before, those unknown."""

    revoked: tuple[str, ...]
    already_revoked: tuple[str, ...]
    not_found: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of one client's validation cache, since it was built.

    - ``hits``: validations answered from a fresh cache entry.
    - ``misses``: validations that needed the server; ``misses - coalesced``
      is the number of requests sent.
    - ``coalesced``: misses that joined a request already in flight for the
      same token instead of sending their own.
    - ``errors``: requests that ended without an answer (after retries).
    - ``stale``: validations answered from a stale entry (``stale_if_error``).
    - ``size`` / ``maxsize``: entries held now / at most.
    - ``subscription``: the revocation event stream. ``"live"``: changes
      evict entries as they happen. ``"off"``: not subscribed (turned off,
      or the client closed). ``"idle"``: not started yet (it starts with the
      first request to the server). ``"connecting"``: (re)connecting; entries
      live for ``cache_ttl`` meanwhile. ``"unavailable"``: the server offers
      no stream (an older server, or turned off there); tried again later.
    - ``last_event_at``: when the last change or reset arrived (UTC).
    - ``events``: entries evicted on the server's word; ``resets``: whole
      cache drops after a gap the server could not replay.

    Malformed tokens are answered locally and counted in none of these.
    """

    hits: int
    misses: int
    coalesced: int
    errors: int
    stale: int
    size: int
    maxsize: int
    subscription: SubscriptionState = "off"
    last_event_at: datetime | None = None
    events: int = 0
    resets: int = 0

    @property
    def subscribed(self) -> bool:
        """Whether revocations reach this cache as they happen, not only when entries expire."""
        return self.subscription == "live"

    @property
    def requests(self) -> int:
        """How many validation requests reached (or tried to reach) the server."""
        return self.misses - self.coalesced

    @property
    def hit_ratio(self) -> float:
        """Share of validations answered from the cache; 0.0 before the first one."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
