"""The same protected route, ``GET .../orders`` needing ``orders:read``, in every integration.

Each :class:`Target` serves it for real (uvicorn, werkzeug, Django's own
server, a grpc.aio server) behind one :class:`Authenticator`, and reads the
answer back as an :class:`Outcome`, so that one table of cases runs through
all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import httpx

from amplify_auth_client import AsyncAuthClient, Authenticator, Caller
from tests.integrations.servers import loop_thread, uvicorn_serving, wsgi_serving
from tests.support.services import free_port

REALM = "shop"
SCOPE = "orders:read"
GRPC_METHOD = "/shop.Orders/Get"


@dataclass(frozen=True)
class Outcome:
    """What a client saw: the status (gRPC mapped back), the headers that matter, the body."""

    status: int
    challenge: str | None = None
    retry_after: str | None = None
    detail: str | None = None
    code: str | None = None
    caller: str | None = None


Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class Target:
    """One integration serving the route. ``ours`` is False where the framework shapes the
    body of a refusal itself (``{"detail": ...}``), with the core's status and headers."""

    name: str
    serve: Callable[[Authenticator], AbstractContextManager[Callable[[Headers], Outcome]]]
    ours: bool = True


# -- HTTP ----------------------------------------------------------------------


def http_outcome(response: httpx.Response) -> Outcome:
    body = response.json()
    if response.status_code == 200:
        return Outcome(200, caller=body["caller"])
    return Outcome(
        response.status_code,
        challenge=response.headers.get("www-authenticate"),
        retry_after=response.headers.get("retry-after"),
        detail=body.get("detail"),
        code=body.get("error"),
    )


@contextmanager
def http_caller(url: str) -> Iterator[Callable[[Headers], Outcome]]:
    with httpx.Client(base_url=url, timeout=30) as client:
        yield lambda headers: http_outcome(client.get("/orders", headers=headers))


@contextmanager
def over_uvicorn(app: Any, prefix: str = "") -> Iterator[Callable[[Headers], Outcome]]:
    with uvicorn_serving(app) as url, http_caller(url + prefix) as call:
        yield call


def closing_lifespan(auth: Authenticator) -> Callable[[Any], Any]:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        await auth.aclose()

    return lifespan


@contextmanager
def fastapi_target(auth: Authenticator, *, handler: bool) -> Iterator[Callable[[Headers], Outcome]]:
    from fastapi import Depends, FastAPI

    from amplify_auth_client.integrations.fastapi import RequireScopes, add_refusal_handler

    app = FastAPI(lifespan=closing_lifespan(auth))

    @app.get("/orders")
    async def orders(caller: Caller = Depends(RequireScopes(SCOPE, auth=auth))) -> dict[str, str]:
        return {"caller": caller.name}

    if handler:
        add_refusal_handler(app)
    with over_uvicorn(app) as call:
        yield call


@contextmanager
def asgi_target(auth: Authenticator) -> Iterator[Callable[[Headers], Outcome]]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from amplify_auth_client.integrations.asgi import AuthMiddleware, caller_of

    async def orders(request: Request) -> JSONResponse:
        return JSONResponse({"caller": caller_of(request.scope).name})

    app = Starlette(routes=[Route("/orders", orders)])
    with over_uvicorn(AuthMiddleware(app, scopes=[SCOPE], auth=auth)) as call:
        yield call


@contextmanager
def stateless_target(auth: Authenticator) -> Iterator[Callable[[Headers], Outcome]]:
    from stateless_microservice import (
        ActionRequest,
        StatelessAction,
        StatelessService,
    )

    class Shop(StatelessService):
        name = REALM

        def actions(self) -> list[StatelessAction]:
            return [
                StatelessAction(
                    name="orders",
                    path="/orders",
                    method="GET",
                    handler=self.orders,
                    required_scopes=[SCOPE],
                )
            ]

        async def orders(self, request: ActionRequest, caller: Caller) -> dict[str, str]:
            return {"caller": caller.name}

    # The service builds its own authenticator, with its name as the realm:
    # only the client comes from the one under test (its server, up or down).
    def client() -> AsyncAuthClient:
        return auth.clients.current()

    with over_uvicorn(Shop().create_app(auth_client=client)) as call:
        yield call


@contextmanager
def flask_target(
    auth: Authenticator, *, asynchronous: bool
) -> Iterator[Callable[[Headers], Outcome]]:
    from flask import Flask
    from werkzeug.serving import make_server

    from amplify_auth_client.integrations.flask import AmplifyAuth, current_caller, require_scopes

    app = Flask(__name__)
    AmplifyAuth(app, auth=auth)

    if asynchronous:

        @app.get("/orders")
        @require_scopes(SCOPE)
        async def orders() -> dict[str, str]:
            return {"caller": current_caller().name}

    else:

        @app.get("/orders")
        @require_scopes(SCOPE)
        def orders() -> dict[str, str]:
            return {"caller": current_caller().name}

    serve = wsgi_serving(lambda host, port: make_server(host, port, app, threaded=True))
    with serve as url, http_caller(url) as call:
        yield call


@contextmanager
def django_target(auth: Authenticator, *, kind: str) -> Iterator[Callable[[Headers], Outcome]]:
    from tests.integrations import django_project

    prefix = f"auth{id(auth)}"
    django_project.install(auth, prefix)
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    def make(host: str, port: int) -> ThreadedWSGIServer:
        server = ThreadedWSGIServer((host, port), WSGIRequestHandler)
        server.set_app(WSGIHandler())
        return server

    with wsgi_serving(make) as url, http_caller(f"{url}/{prefix}/{kind}") as call:
        yield call


# -- gRPC ----------------------------------------------------------------------

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAVAILABLE: 503,
}


@contextmanager
def grpc_target(auth: Authenticator) -> Iterator[Callable[[Headers], Outcome]]:
    from amplify_auth_client.integrations.grpc import AuthInterceptor, current_caller

    async def get(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return current_caller().name.encode()

    handler = grpc.method_handlers_generic_handler(
        "shop.Orders", {"Get": grpc.unary_unary_rpc_method_handler(get)}
    )
    port = free_port()

    async def start() -> grpc.aio.Server:
        server = grpc.aio.server(
            interceptors=[AuthInterceptor(methods={GRPC_METHOD: [SCOPE]}, auth=auth)]
        )
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        return server

    async def stop(server: grpc.aio.Server) -> None:
        await server.stop(grace=None)
        await auth.aclose()

    with loop_thread() as loop:
        server = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        call = channel.unary_unary(GRPC_METHOD)

        def request(headers: Headers) -> Outcome:
            metadata = [(name.lower(), value) for name, value in headers]
            try:
                answer = call(b"", metadata=metadata, timeout=30)
            except grpc.RpcError as error:
                trailing = dict(error.trailing_metadata() or ())
                return Outcome(
                    _HTTP_STATUS[error.code()],
                    challenge=trailing.get("www-authenticate"),
                    retry_after=trailing.get("retry-after"),
                    detail=error.details(),
                )
            return Outcome(200, caller=answer.decode())

        try:
            yield request
        finally:
            channel.close()
            asyncio.run_coroutine_threadsafe(stop(server), loop).result(timeout=30)


TARGETS = [
    Target("stateless_service", stateless_target),
    Target("fastapi", lambda auth: fastapi_target(auth, handler=False), ours=False),
    Target("fastapi+handler", lambda auth: fastapi_target(auth, handler=True)),
    Target("asgi", asgi_target),
    Target("flask", lambda auth: flask_target(auth, asynchronous=False)),
    Target("flask_async", lambda auth: flask_target(auth, asynchronous=True)),
    Target("django", lambda auth: django_target(auth, kind="sync")),
    Target("django_async", lambda auth: django_target(auth, kind="async")),
    Target("drf", lambda auth: django_target(auth, kind="drf"), ours=False),
    Target("grpc", grpc_target, ours=False),
]
