"""Who may do what on which token: the authorisation of every management route, written once.

Two kinds of manager, decided from the caller's token as validation sees
it (the same caches, so a revoked manager stops managing at once):

* a **global admin** holds ``admin``: every token, every owner, the whole
  audit log, as before owners existed;
* a **delegated admin** holds ``tokens:manage`` and has an owner: only the
  tokens of that owner. What it creates gets its owner, holds only scopes
  it holds itself (it cannot grant what it does not have, so never
  ``admin``) and expires no later than it does; it extends nothing past its
  own expiry either, or it could extend itself forever.

Anything else is a 403. A token of another owner is answered exactly as an
id of no token (the same 404, body and headers), so a team cannot learn
that another's token exists: :func:`visible` is the one test of that, and
the store's queries apply the same :func:`scope_of` condition. The rules a
create is held to are the contract's
(:func:`~amplify_auth_client.contract.delegation_refusal`), which
``FakeAuthServer`` applies too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from amplify_auth_client.contract import (
    EXPIRES_AFTER_MANAGER,
    OTHER_OWNER,
    TOKENS_MANAGE_SCOPE,
    delegation_refusal,
    manager_reach,
)
from amplify_auth_server.cache import TokenState
from amplify_auth_server.errors import BeyondDelegation, Forbidden, InvalidInput
from amplify_auth_server.models import Actor, TokenRecord


def caller(state: TokenState) -> Actor:
    """A valid token as the actor of what it asks."""
    assert state.token_id is not None
    return Actor(
        state.token_id,
        state.name,
        scopes=state.scopes,
        owner=state.owner,
        expires_at=state.expires_at,
    )


def manager(state: TokenState) -> Actor:
    """The actor a valid token manages as; 403 when it may manage nothing."""
    if manager_reach(state.scopes, state.owner) is not None:
        return caller(state)
    if TOKENS_MANAGE_SCOPE in state.scopes:
        raise Forbidden(
            "this token holds tokens:manage but has no owner, so it manages nothing: "
            "a delegated admin always names the owner whose tokens it manages"
        )
    raise Forbidden(
        "this token lacks the scope management requires: admin (every token) or "
        "tokens:manage (the tokens of its owner)"
    )


def scope_of(actor: Actor) -> str | None:
    """The owner whose tokens ``actor`` is limited to; None for a global admin."""
    reach = manager_reach(actor.scopes, actor.owner)
    return None if reach == "*" else reach


def visible(actor: Actor, record: TokenRecord | None) -> TokenRecord | None:
    """``record`` if ``actor`` may see it; else None, as if no token had that id."""
    if record is None:
        return None
    limit = scope_of(actor)
    return record if limit is None or record.owner == limit else None


def may_list(actor: Actor, owner: str | None) -> str | None:
    """The owner a listing (or a bulk revocation) holds: a delegated admin's own, always.

    A delegated admin naming another owner is a 403: its listing could never
    hold one of them, and saying so beats an empty page that looks like an answer.
    """
    limit = scope_of(actor)
    if limit is None:
        return owner
    if owner is not None and owner != limit:
        raise BeyondDelegation(
            f"this token manages the tokens of owner {limit!r} only", code=OTHER_OWNER
        )
    return limit


@dataclass(frozen=True, slots=True)
class Grant:
    """What a create may make: the new token's owner, and its latest expiry."""

    owner: str | None
    not_after: datetime | None = None


def may_create(
    actor: Actor,
    *,
    owner: str | None,
    scopes: Sequence[str],
    ttl_days: int | None,
    now: datetime,
) -> Grant:
    """The owner of the token ``actor`` asks for, or a 403 / 422 saying what is not allowed."""
    limit = scope_of(actor)
    refusal = delegation_refusal(
        held=actor.scopes,
        reach="*" if limit is None else limit,
        manager_expires_at=actor.expires_at,
        owner=owner,
        scopes=scopes,
        expires_at=None if ttl_days is None else now + timedelta(days=ttl_days),
    )
    if refusal is not None:
        code, detail = refusal
        raise BeyondDelegation(detail, code=code)
    owner = owner if limit is None else limit
    if owner is None and TOKENS_MANAGE_SCOPE in scopes:
        raise InvalidInput(
            "a token with tokens:manage must have an owner: delegation names whom it is for",
            errors=[
                {"loc": ["body", "owner"], "msg": "Required with tokens:manage", "type": "missing"}
            ],
        )
    return Grant(owner, None if limit is None else actor.expires_at)


def extend_bound(actor: Actor) -> datetime | None:
    """The latest expiry ``actor`` may extend a token to: a delegated admin's own
    expiry (else it could extend itself forever); None for no bound."""
    return None if scope_of(actor) is None else actor.expires_at


def beyond_bound() -> BeyondDelegation:
    """The refusal of an extension past :func:`extend_bound`."""
    return BeyondDelegation(
        "a token can extend tokens only up to its own expiry", code=EXPIRES_AFTER_MANAGER
    )


def may_rotate(actor: Actor, record: TokenRecord, expires_at: datetime | None) -> None:
    """Refuse (403) a rotation ``actor`` may not make: the successor is a new token
    with ``record``'s scopes expiring at ``expires_at``, held to the rules of a
    create, so that a delegated admin cannot rotate its way past its own
    expiry or into scopes it does not hold."""
    limit = scope_of(actor)
    refusal = delegation_refusal(
        held=actor.scopes,
        reach="*" if limit is None else limit,
        manager_expires_at=actor.expires_at,
        owner=record.owner,
        scopes=record.scopes,
        expires_at=expires_at,
    )
    if refusal is not None:
        code, detail = refusal
        raise BeyondDelegation(detail, code=code)
