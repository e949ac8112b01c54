"""The app's parts, and the FastAPI dependencies that hand them to routes.

All dependencies live here as named ``Annotated`` aliases, so a route's
signature says what it needs (``admin: Admin``) and nothing else does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from amplify_auth_client.contract import ADMIN_SCOPE, bearer_token
from amplify_auth_server.cache import TokenCache
from amplify_auth_server.commands import CommandQueue
from amplify_auth_server.config import Settings
from amplify_auth_server.errors import Forbidden, Unauthorized
from amplify_auth_server.events import EventFeed
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.models import Actor
from amplify_auth_server.store import TokenStore
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


def services(request: Request) -> Services:
    result: Services = request.app.state.services
    return result


ServicesDep = Annotated[Services, Depends(services)]


async def require_admin(request: Request, parts: ServicesDep) -> Actor:
    """The admin behind ``Authorization: Bearer …``: 401 without one, 403 without the scope."""
    header = request.headers.get("authorization")
    if header is None:
        raise Unauthorized()
    credentials = bearer_token(header)
    if credentials is None:
        raise Unauthorized("the Authorization header must be `Bearer <admin token>`")
    verdict = parts.validator.judge(await parts.validator.state_of(credentials), ())
    if verdict.result != "valid" or verdict.state is None or verdict.state.token_id is None:
        raise Unauthorized(f"the admin token is not valid ({verdict.result})")
    if ADMIN_SCOPE not in verdict.state.scopes:
        raise Forbidden()
    return Actor(verdict.state.token_id, verdict.state.name)


Admin = Annotated[Actor, Depends(require_admin)]
