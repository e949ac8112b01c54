"""Who may use the console, and the signed-in check every page runs.

:func:`may_manage` is the one permission check: an admin token, or a
delegated ``tokens:manage`` token with an owner. The pages call the API's
own route functions as the session's actor (:func:`authz.manager
<amplify_auth_server.authz.manager>` of its token, scopes and owner
included), so a delegated admin sees and changes exactly what the API lets
it: its owner's tokens.

Every request re-validates the session's token through the same tiers the
API uses (:meth:`~amplify_auth_server.validation.Validator.state_by_hash`),
whose caches every revoke invalidates: a session ends at the first request
after its token is revoked or expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, Request

from amplify_auth_client.contract import manager_reach
from amplify_auth_server import authz
from amplify_auth_server.cache import TokenState
from amplify_auth_server.console._sessions import Session, SessionStore
from amplify_auth_server.deps import Services
from amplify_auth_server.models import Actor
from amplify_auth_server.validation import Validator

#: The session cookie's name.
COOKIE: Final = "amplify_console"


def may_manage(state: TokenState) -> bool:
    """Whether the token behind ``state`` may sign in to the console: whether it manages
    any tokens at all (every owner's, or its own owner's)."""
    return manager_reach(state.scopes, state.owner) is not None


def usable(state: TokenState | None) -> TokenState | None:
    """``state`` if it is a valid token that may manage; else None, whatever the reason."""
    verdict = Validator.judge(state, ())
    if verdict.result != "valid" or state is None or state.token_id is None:
        return None
    return state if may_manage(state) else None


class SignInRequired(Exception):
    """No live session: the console answers with the sign-in page."""

    def __init__(self, ended: bool) -> None:
        super().__init__("sign-in required")
        #: Whether a session existed and has just ended (the page says so).
        self.ended = ended


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A request's live session, and the actor its changes are recorded under."""

    session_id: str
    session: Session
    parts: Services
    #: The session's token as the API's routes see a manager: its scopes,
    #: owner and expiry decide what it may list, create and change.
    actor: Actor


def services_of(request: Request) -> Services:
    """The server's parts (the console is mounted in the server's app)."""
    parts: Services = request.app.state.parent.state.services
    return parts


def sessions_of(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.sessions
    return store


async def signed_in(request: Request) -> SignedIn:
    """The live session of this request, or :class:`SignInRequired`."""
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        raise SignInRequired(ended=False)
    sessions = sessions_of(request)
    session = sessions.get(session_id)
    if session is None:
        raise SignInRequired(ended=True)
    parts = services_of(request)
    state = usable(await parts.validator.state_by_hash(session.token_hash))
    if state is None or state.token_id != session.token_id:
        sessions.close(session_id)
        raise SignInRequired(ended=True)
    return SignedIn(session_id, session, parts, authz.manager(state))


SignedInDep = Annotated[SignedIn, Depends(signed_in)]
