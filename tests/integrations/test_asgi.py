"""The ASGI middleware: public paths and prefixes, WebSocket handshakes, the lifespan."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from amplify_auth_client.integrations.asgi import AuthMiddleware, caller_of
from amplify_auth_client.pytest_plugin import TokenFactory
from amplify_auth_client.testing import FakeAuthServer
from tests.integrations.servers import uvicorn_serving


async def who(request: Request) -> JSONResponse:
    return JSONResponse({"caller": caller_of(request.scope).name})


async def anyone(request: Request) -> JSONResponse:
    return JSONResponse({"open": True})


async def socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(caller_of(websocket.scope).name)
    await websocket.close()


def app() -> AuthMiddleware:
    inner = Starlette(
        routes=[
            Route("/orders", who),
            Route("/health", anyone),
            Route("/docs/index", anyone),
            WebSocketRoute("/feed", socket),
        ]
    )
    return AuthMiddleware(inner, scopes=["orders:read"], public=["/health", "/docs*"])


@pytest.fixture
def url(amplify_auth_server: FakeAuthServer) -> Iterator[str]:
    with uvicorn_serving(app()) as base:
        yield base


def test_public_paths_and_prefixes_need_no_token(
    url: str, amplify_auth_server: FakeAuthServer
) -> None:
    amplify_auth_server.available = False
    assert httpx.get(url + "/health").json() == {"open": True}
    assert httpx.get(url + "/docs/index").json() == {"open": True}
    assert httpx.get(url + "/orders").status_code == 401


def test_the_app_behind_sees_the_caller(url: str, amplify_token: TokenFactory) -> None:
    token = amplify_token(scopes=["orders:read"], name="reader").token
    response = httpx.get(url + "/orders", headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {"caller": "reader"}


def test_a_public_path_must_be_a_path() -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        AuthMiddleware(Starlette(), public=["health"])


def test_a_websocket_handshake_is_authenticated_too(url: str, amplify_token: TokenFactory) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    token = amplify_token(scopes=["orders:read"], name="reader").token
    feed = url.replace("http://", "ws://") + "/feed"
    with connect(feed, additional_headers={"Authorization": f"Bearer {token}"}) as connection:
        assert connection.recv(timeout=10) == "reader"
    # Refused with the core's HTTP answer, challenge included, as a plain request is.
    with pytest.raises(InvalidStatus) as refused:
        connect(feed)
    response = refused.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
