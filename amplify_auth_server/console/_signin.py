"""Signing in with a token, and out.

The sign-in form's own CSRF token lives in a short cookie of its own (there
is no session yet); a cross-site form cannot send it (``SameSite=Strict``),
nor read it to copy into the form.

Every refusal reads the same, whether the token is unknown, revoked,
expired, malformed or without a right to manage: the page must not tell a
guesser which tokens exist. Refusals are counted by the server's failure
throttle (kind ``signin``: shared by replicas through Redis, the client named
as the API's throttle names it); past the budget, no token is checked at all.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Final

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from amplify_auth_client.contract import hash_token
from amplify_auth_server.console._access import (
    COOKIE,
    SignedInDep,
    services_of,
    sessions_of,
    usable,
)
from amplify_auth_server.console._render import page
from amplify_auth_server.console._security import (
    check_csrf,
    clear_cookie,
    field,
    read_form,
    set_cookie,
)
from amplify_auth_server.console._sessions import Session
from amplify_auth_server.errors import TooManyFailures
from amplify_auth_server.throttle import client_of

router = APIRouter()

SIGN_IN_COOKIE: Final = "amplify_console_signin"
REFUSED: Final = "That token cannot sign in: it is not a valid token that manages tokens."
THROTTLED: Final = "Too many sign-in attempts from here. Wait a minute, then try again."


def _forced_secure(request: Request) -> bool:
    return bool(services_of(request).settings.console_secure_cookies)


def _form(request: Request, *, message: str | None, status_code: int = 200) -> Response:
    csrf = secrets.token_urlsafe(32)
    response = page(
        request,
        "sign_in.html",
        {"title": "Sign in", "csrf": csrf, "message": message},
        status_code=status_code,
    )
    set_cookie(response, request, SIGN_IN_COOKIE, csrf, forced_secure=_forced_secure(request))
    return response


@router.get("/sign-in")
async def sign_in_page(
    request: Request, ended: Annotated[bool, Query(description="A session just ended.")] = False
) -> Response:
    message = "Your session has ended. Sign in again." if ended else None
    return _form(request, message=message)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    check_csrf(form, request.cookies.get(SIGN_IN_COOKIE, ""))
    parts = services_of(request)
    client = client_of(request.scope)
    if not await parts.throttle.allows("signin", client):
        return _form(request, message=THROTTLED, status_code=429)
    raw = field(form, "token")
    state = usable(await parts.validator.state_of(raw)) if raw else None
    if state is None or state.token_id is None:
        try:
            await parts.throttle.failed("signin", client)
        except TooManyFailures:
            return _form(request, message=THROTTLED, status_code=429)
        return _form(request, message=REFUSED, status_code=401)
    session_id = sessions_of(request).open(
        Session(token_id=state.token_id, token_hash=hash_token(raw), name=state.name)
    )
    response = RedirectResponse("/console/tokens", status_code=303)
    forced = _forced_secure(request)
    set_cookie(response, request, COOKIE, session_id, forced_secure=forced)
    clear_cookie(response, request, SIGN_IN_COOKIE, forced_secure=forced)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, signed: SignedInDep) -> Response:
    check_csrf(await read_form(request), signed.session.csrf)
    sessions_of(request).close(signed.session_id)
    response = RedirectResponse("/console/sign-in", status_code=303)
    clear_cookie(response, request, COOKIE, forced_secure=_forced_secure(request))
    return response
