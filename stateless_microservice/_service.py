"""``StatelessService``: list your actions, get a FastAPI app that authenticates them.

A request to a protected action goes through four steps, in this order, and
the handler runs only if all of them pass:

1. the bearer token is taken from ``Authorization`` (nowhere else: a token in
   a query string ends up in access logs);
2. the SDK's :class:`~amplify_auth_client.AsyncAuthClient` validates it with
   the action's scopes: a cache hit costs about a microsecond, a miss one
   request shared by every concurrent caller of the same token;
3. the body is read, at most ``max_body_bytes`` of it: after the token, so an
   anonymous client cannot make the service read large bodies;
4. the handler is called, in the event loop if it is a coroutine function,
   else in a worker thread.

The auth client is created in the app's lifespan, inside the event loop that
serves the requests (an ``AsyncAuthClient`` belongs to one loop), and closed
with it. By default it is configured from the environment: ``AUTH_SERVICE_URL``
and ``AUTH_CACHE_TTL``; pass ``auth_client=`` to :meth:`StatelessService.create_app`
to build it yourself (tests do, with :mod:`stateless_microservice.testing`).

A revocation reaches the service through that client: it keeps the auth
server's change events open (``GET /auth/events``) and drops a revoked
token's cached answer as the event arrives, so the service refuses the
token within milliseconds. ``AUTH_CACHE_TTL`` bounds the staleness only
while that stream is down.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Final

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from amplify_auth_client import AsyncAuthClient, AuthConfigError, Authenticator
from amplify_auth_client._refusal import check_realm
from amplify_auth_client._shared import (
    ENV_CACHE_TTL,
    auth_client_from_environment,
    cache_ttl_from_environment,
)
from stateless_microservice._action import StatelessAction
from stateless_microservice._dispatch import ActionFront, Runtime, endpoint, error_response
from stateless_microservice._errors import ActionError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ENV_CACHE_TTL",
    "StatelessService",
    "auth_client_from_environment",
    "cache_ttl_from_environment",
]

logger = logging.getLogger("stateless_microservice")

#: Bodies over this many bytes are refused with 413 (1 MiB).
DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
ENV_BASE_URL: Final = "AUTH_SERVICE_URL"
#: The OpenAPI name of the bearer scheme every protected action requires.
SECURITY_SCHEME: Final = "bearerAuth"

AuthClientFactory = Callable[[], AsyncAuthClient]

_ERROR_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
}
_HTTP_CODES: Final = {404: "not_found", 405: "method_not_allowed"}


class StatelessService:
    """A service: subclass it, list its actions, and serve :meth:`create_app`.

    ::

        class Orders(StatelessService):
            name = "orders"

            def actions(self) -> list[StatelessAction]:
                return [
                    StatelessAction(name="health", path="/health", method="GET",
                                    handler=self.health),
                    StatelessAction(name="create", path="/orders", handler=self.create,
                                    required_scopes=["orders:write"]),
                ]

            def health(self, request: ActionRequest) -> dict[str, str]:
                return {"status": "healthy"}

            async def create(self, request: ActionRequest, caller: Caller) -> dict[str, Any]:
                return {"order": request.json(), "created_by": caller.name}

        app = Orders().create_app()   # or Orders().run() to serve on HOST:PORT

    ``name`` is the OpenAPI title and the ``realm`` of authentication
    challenges; ``version`` the OpenAPI version. Override :meth:`lifespan` for
    resources of your own (a database pool): it runs inside the app's.
    """

    name: ClassVar[str] = "stateless-service"
    version: ClassVar[str] = "0.1.0"
    max_body_bytes: ClassVar[int] = DEFAULT_MAX_BODY_BYTES

    def actions(self) -> Iterable[StatelessAction]:
        """The service's endpoints. Called once, by :meth:`create_app`."""
        raise NotImplementedError(f"{type(self).__name__} must define actions()")

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Set up before the first request, tear down after the last; nothing by default."""
        yield

    def create_app(self, *, auth_client: AuthClientFactory | None = None) -> FastAPI:
        """A FastAPI app serving the actions, each behind its token and scope check.

        ``auth_client`` builds the :class:`~amplify_auth_client.AsyncAuthClient`
        when the app starts (default: :func:`auth_client_from_environment`).
        It is not called when every action is public.
        """
        try:
            realm = check_realm(self.name)
        except ValueError as exc:
            raise ValueError(f"service name: {exc}") from None
        actions = _checked(list(self.actions()))
        runtime = Runtime()
        factory = auth_client or auth_client_from_environment
        needs_auth = any(not action.public for action in actions)

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            client = factory() if needs_auth else None
            if client is not None:
                runtime.authenticator = Authenticator(realm=realm, async_client=client)
            try:
                async with self.lifespan():
                    yield
            finally:
                runtime.authenticator = None
                if client is not None:
                    await client.aclose()

        app = FastAPI(
            title=self.name,
            version=self.version,
            description=inspect.getdoc(type(self)) or "",
            lifespan=lifespan,
        )
        routes = [(action, endpoint(action, runtime, self.max_body_bytes)) for action in actions]
        for action, answer in routes:
            app.add_api_route(
                action.path,
                answer,
                methods=[action.method],
                name=action.name,
                operation_id=action.name,
                description=action.description or inspect.getdoc(action.handler) or "",
                responses=_responses(action),
                openapi_extra=_openapi_extra(action),
            )
        app.add_exception_handler(HTTPException, _http_error)
        # In front of FastAPI's router: the actions' requests skip it (see _dispatch).
        app.add_middleware(ActionFront, routes=routes)
        app.openapi = _openapi(app, needs_auth)  # type: ignore[method-assign]
        return app

    def run(self, *, host: str | None = None, port: int | None = None) -> None:
        """Serve the app with uvicorn on ``host:port`` (default: env ``HOST``/``PORT``,
        else ``127.0.0.1:8000``); a bad setting stops it with one line on stderr."""
        import uvicorn

        try:
            host = host or os.environ.get("HOST", "").strip() or "127.0.0.1"
            port = port or _port(os.environ.get("PORT", "").strip() or "8000")
            if not os.environ.get(ENV_BASE_URL, "").strip():
                raise AuthConfigError(
                    f"{ENV_BASE_URL} is not set: point it at the auth service, "
                    "e.g. http://127.0.0.1:8000"
                )
            cache_ttl_from_environment()
        except AuthConfigError as exc:
            print(f"{self.name}: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        uvicorn.run(self.create_app(), host=host, port=port, server_header=False)


def _port(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise AuthConfigError(f"PORT must be a port number (1-65535), got {raw!r}")
    return int(raw)


def _checked(actions: Sequence[StatelessAction]) -> Sequence[StatelessAction]:
    names: set[str] = set()
    routes: set[tuple[str, str]] = set()
    for action in actions:
        if not isinstance(action, StatelessAction):
            raise TypeError(f"actions() must give StatelessAction objects, got {action!r}")
        if action.name in names:
            raise ValueError(f"two actions are named {action.name!r}: names must be unique")
        route = (action.method, _PATH_PARAM_SHAPE.sub("{}", action.path))
        if route in routes:
            raise ValueError(f"two actions answer {action.method} {action.path}")
        names.add(action.name)
        routes.add(route)
    return actions


_PATH_PARAM_SHAPE: Final = re.compile(r"\{[^}]*\}")


async def _http_error(_: Request, exc: Exception) -> Response:
    # An unknown path or a wrong method: Starlette's, put in our JSON shape.
    assert isinstance(exc, HTTPException)
    error = ActionError(
        str(exc.detail),
        status_code=exc.status_code,
        code=_HTTP_CODES.get(exc.status_code, "http_error"),
        headers=exc.headers,
    )
    return error_response(error)


def _responses(action: StatelessAction) -> dict[int | str, dict[str, Any]]:
    def error(description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": _ERROR_SCHEMA}},
        }

    responses: dict[int | str, dict[str, Any]] = {}
    if action.method in ("POST", "PUT", "PATCH"):
        responses[413] = error("The body is over the service's limit.")
    if not action.public:
        responses[401] = error(
            "No bearer token, or one that is malformed, unknown, revoked or expired."
        )
        responses[403] = error(f"The token lacks some of: {', '.join(action.required_scopes)}.")
        responses[503] = error("The auth service could not be asked; retry later.")
    return responses


def _openapi_extra(action: StatelessAction) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if not action.public:
        # OpenAPI 3.1 lets a non-OAuth scheme list the "roles" it requires: the scopes.
        extra["security"] = [{SECURITY_SCHEME: list(action.required_scopes)}]
    if action.path_params:
        extra["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in action.path_params
        ]
    if action.method in ("POST", "PUT", "PATCH"):
        extra["requestBody"] = {"required": False, "content": {"application/json": {"schema": {}}}}
    return extra


def _openapi(app: FastAPI, needs_auth: bool) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            if needs_auth:
                schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
                schemes[SECURITY_SCHEME] = {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An AMPLIfy Auth token (amp_live_...) holding the "
                    "action's scopes.",
                }
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi
