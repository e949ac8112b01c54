"""The FastAPI dependency: OpenAPI scheme and scopes, per-route policy, its refusal handler."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Security

from amplify_auth_client import Authenticator, Caller
from amplify_auth_client.integrations.fastapi import RequireScopes, public, requires
from amplify_auth_client.pytest_plugin import TokenFactory
from amplify_auth_client.testing import FakeAuthServer
from tests.integrations.servers import uvicorn_serving

#: The one-dependency form, as a named alias (module level: FastAPI resolves it by name).
Reader = Annotated[Caller, requires("orders:read")]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await Authenticator.default().aclose()


def shop() -> FastAPI:
    app = FastAPI(lifespan=lifespan)

    @app.get("/orders")
    async def orders(caller: Caller = Depends(RequireScopes("orders:read"))) -> dict[str, object]:
        return {"caller": caller.name, "stale": caller.stale}

    @app.delete("/orders/{order_id}")
    async def cancel(
        order_id: str,
        caller: Caller = Security(RequireScopes("orders:write", max_staleness=0)),
    ) -> dict[str, str]:
        return {"cancelled": order_id}

    @app.get("/catalogue")
    async def catalogue(
        caller: Caller = Depends(RequireScopes("orders:read", on_outage="serve_cached")),
    ) -> dict[str, object]:
        return {"caller": caller.name, "stale": caller.stale}

    @app.get("/health")
    @public
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


@pytest.fixture
def url(amplify_auth_server: FakeAuthServer) -> Iterator[str]:
    with uvicorn_serving(shop()) as base:
        yield base


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_openapi_document_declares_the_scheme_and_each_routes_scopes() -> None:
    document = shop().openapi()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "amp_live_...",
        "description": "An AMPLIfy Auth token (amp_live_...) holding the route's scopes.",
    }
    paths = document["paths"]
    assert paths["/orders"]["get"]["security"] == [{"bearerAuth": ["orders:read"]}]
    assert paths["/orders/{order_id}"]["delete"]["security"] == [{"bearerAuth": ["orders:write"]}]
    assert "security" not in paths["/health"]["get"]


def test_a_strict_route_asks_every_time_the_others_once(
    url: str,
    amplify_auth_server: FakeAuthServer,
    amplify_token: TokenFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The plugin turns the cache off; on here, as in production (the client
    # is built at the first request, from the environment then).
    monkeypatch.setenv("AUTH_CACHE_TTL", "30")
    token = amplify_token(scopes=["orders:read", "orders:write"]).token
    with httpx.Client(base_url=url, headers=bearer(token)) as client:
        for _ in range(3):
            assert client.get("/orders").status_code == 200
        assert amplify_auth_server.validation_requests() == 1
        for _ in range(3):
            assert client.delete("/orders/7").json() == {"cancelled": "7"}
    assert amplify_auth_server.validation_requests() == 4


def test_serve_cached_rides_an_outage_flagged_stale(
    url: str, amplify_auth_server: FakeAuthServer, amplify_token: TokenFactory
) -> None:
    token = amplify_token(scopes=["orders:read"], name="reader").token
    with httpx.Client(base_url=url, headers=bearer(token)) as client:
        assert client.get("/catalogue").json() == {"caller": "reader", "stale": False}
        amplify_auth_server.available = False
        assert client.get("/catalogue").json() == {"caller": "reader", "stale": True}
        assert client.get("/orders").status_code == 503


def test_a_public_route_needs_no_token_even_while_auth_is_down(
    url: str, amplify_auth_server: FakeAuthServer
) -> None:
    amplify_auth_server.available = False
    assert httpx.get(url + "/health").json() == {"status": "ok"}


def test_the_requires_form_is_the_same_check_and_document(
    amplify_auth_server: FakeAuthServer, amplify_token: TokenFactory
) -> None:
    app = FastAPI(lifespan=lifespan)

    @app.get("/orders")
    async def orders(caller: Reader) -> dict[str, str]:
        return {"caller": caller.name}

    assert app.openapi()["paths"]["/orders"]["get"]["security"] == [{"bearerAuth": ["orders:read"]}]
    token = amplify_token(scopes=["orders:read"], name="reader").token
    with uvicorn_serving(app) as base:
        assert httpx.get(base + "/orders", headers=bearer(token)).json() == {"caller": "reader"}
        assert httpx.get(base + "/orders").status_code == 401
