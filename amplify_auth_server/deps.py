"""The app's parts, and the FastAPI dependencies that hand them to routes.

All dependencies live here as named ``Annotated`` aliases, so a route's
signature says what it needs (``admin: Admin``) and nothing else does.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from amplify_auth_client.contract import bearer_token, is_token_id
from amplify_auth_server import authz
from amplify_auth_server.cache import TokenCache
from amplify_auth_server.commands import CommandQueue, RecordRefusal
from amplify_auth_server.config import Settings
from amplify_auth_server.denials import Denials
from amplify_auth_server.errors import (
    AuthServerError,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthorized,
)
from amplify_auth_server.events import EventFeed
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.models import Actor
from amplify_auth_server.pages import Cursors
from amplify_auth_server.rotations import IdleRotations
from amplify_auth_server.store import TokenStore
from amplify_auth_server.throttle import FailureThrottle
from amplify_auth_server.usage import UsageFlush, UsageReports
from amplify_auth_server.validation import Validator


@dataclass(slots=True)
class Services:
    """Everything a request may use, built once by the app's lifespan."""

    settings: Settings
    metrics: Metrics
    store: TokenStore
    cache: TokenCache
    validator: Validator
    queue: CommandQueue
    events: EventFeed
    cursors: Cursors
    throttle: FailureThrottle
    denials: Denials
    usage: UsageReports
    #: The loops a test drives by hand (their ``flush`` and ``scan_once``): the
    #: usage flush (None with ``USAGE_COUNTING`` off) and the idle-rotation scan.
    usage_flush: UsageFlush | None
    rotations: IdleRotations


async def services(request: Request) -> Services:
    # async, though it awaits nothing: FastAPI runs a plain ``def`` dependency
    # in its thread pool, a thread hop on every management request.
    result: Services = request.app.state.services
    return result


ServicesDep = Annotated[Services, Depends(services)]


async def require_admin(request: Request, parts: ServicesDep) -> Actor:
    """The manager behind ``Authorization: Bearer …``: 401 without a valid token, 403
    when it may manage nothing (:func:`amplify_auth_server.authz.manager`).

    Validated as every token is (the same caches), so a revoked admin stops
    managing at once. A 401 or 403 here counts against the client's budget
    (429 past it) and is audited in aggregate (``denials``); a valid token's
    refusal, here or in the route (a 403; a 404 for a delegated admin, which
    may be another owner's token: :func:`audit_refusal`), is also audited on
    its own, before it is answered, until the client is throttled: a flood
    cannot fill the log.

    A plain dependency, not a generator wrapping the route: FastAPI's exit
    stack for one cost a create a sixth of its time. The manager is left on
    the request for the error handler instead.
    """
    try:
        actor, forbidden = await _manager(request, parts)
    except Unauthorized as refusal:
        raise await parts.denials.refused(request, refusal) from None
    if forbidden is not None:
        answer = await parts.denials.refused(request, forbidden)
        if answer is forbidden:
            await _refused(request, parts, actor, forbidden)
        raise answer from None
    request.state.manager = actor
    return actor


async def audit_refusal(request: Request, exc: AuthServerError) -> None:
    """Audit what a route refused a valid manager (see :func:`require_admin`), before the
    API's error handler answers it: a 403, or a delegated admin's 404 (perhaps another
    owner's token). A global admin's 404 is only an id that does not exist."""
    actor: Actor | None = getattr(request.state, "manager", None)
    if actor is None or not isinstance(exc, Forbidden | NotFound):
        return
    if isinstance(exc, Forbidden) or authz.scope_of(actor) is not None:
        await _refused(request, request.app.state.services, actor, exc)


async def _manager(request: Request, parts: Services) -> tuple[Actor, Forbidden | None]:
    """The manager the request's token is, and None; or the caller it names, and why
    it may manage nothing. 401 without a valid token."""
    header = request.headers.get("authorization")
    if header is None:
        raise Unauthorized()
    credentials = bearer_token(header)
    if credentials is None:
        raise Unauthorized("the Authorization header must be `Bearer <admin token>`")
    verdict = parts.validator.judge(await parts.validator.state_of(credentials), ())
    if verdict.result != "valid" or verdict.state is None or verdict.state.token_id is None:
        raise Unauthorized(f"the admin token is not valid ({verdict.result})")
    # A management call is a use of its token: "unused for 90 days" must
    # never name an admin token in daily use.
    parts.validator.used(verdict)
    try:
        return authz.manager(verdict.state), None
    except Forbidden as exc:
        return authz.caller(verdict.state), exc


async def _refused(request: Request, parts: Services, actor: Actor, exc: AuthServerError) -> None:
    """Audit a refusal: who (``actor``), what (the route), on which token (as asked)."""
    route = request.scope.get("route")
    token_id = request.path_params.get("token_id")
    refusal = RecordRefusal(
        actor=actor,
        attempt=route.name if isinstance(route, APIRoute) else request.url.path,
        token_id=token_id if is_token_id(token_id) else None,
        status=exc.status_code,
        error=exc.body()["error"],
    )
    # The refusal is answered even if it cannot be written down.
    with contextlib.suppress(AuthServerError):
        await parts.queue.submit(refusal)


Admin = Annotated[Actor, Depends(require_admin)]


#: A query parameter's name that may be echoed in an error (what a typo looks like).
_SAFE_NAME: Final = re.compile(r"[A-Za-z0-9_.\[\]-]{1,64}")


#: What a number in a query may look like: pydantic's lax int would also take
#: " 5", "5 ", "+5" and "5.0".
_DIGITS: Final = re.compile(r"0|[1-9][0-9]{0,8}")


def _declared(dependant: Dependant) -> dict[str, bool]:
    """The route's query parameters, each with whether it is an integer."""
    names = {param.alias: param.field_info.annotation is int for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared(sub)
    return names


def check_query(pairs: Iterable[tuple[str, str]], declared: Mapping[str, bool]) -> None:
    """Every query parameter is one the route declares, given once, and an integer one
    in plain digits; else 422.

    An unknown parameter was silently dropped before (``?limit=10`` where
    there was no ``limit``, ``limit[]=1``): now it is named, when its name is
    one a typo makes; a repeated one is refused, as a duplicate JSON key is,
    since which of the two counts is a parser's guess. Integers are as strict
    as in a body; their range is the route's own check.
    """
    seen: set[str] = set()
    errors: list[dict[str, object]] = []
    for name, value in pairs:
        if name not in declared:
            msg, kind = "Unknown query parameter", "extra_forbidden"
        elif name in seen:
            msg, kind = "Given more than once", "duplicate"
        elif declared[name] and not _DIGITS.fullmatch(value):
            msg, kind = "Input should be a whole number, in digits only", "int_parsing"
        else:
            seen.add(name)
            continue
        shown = name if _SAFE_NAME.fullmatch(name) else "*"
        errors.append({"loc": ["query", shown], "msg": msg, "type": kind})
    if errors:
        raise InvalidInput("the query has parameters this route does not take", errors=errors)


async def strict_query(request: Request) -> None:
    """:func:`check_query` for every route of the app (an app-wide dependency)."""
    route = request.scope.get("route")
    declared = _declared(route.dependant) if isinstance(route, APIRoute) else {}
    check_query(request.query_params.multi_items(), declared)
