"""Helpers for the server's API tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from amplify_auth_client import generate_token
from amplify_auth_server import Settings, create_app
from amplify_auth_server.deps import Services
from tests.support.server import Backend, ServerProcess


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    """An HTTP client that sends the server's admin token."""
    with server.client() as client:
        yield client


@pytest.fixture
def anonymous(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client(token=None) as client:
        yield client


def create(admin: httpx.Client, **body: Any) -> dict[str, Any]:
    """Create a token through the API; returns the 201 body (with the raw token)."""
    body.setdefault("name", "test-token")
    body.setdefault("scopes", ["read"])
    response = admin.post("/auth/tokens", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def validate(client: httpx.Client, token: str, *scopes: str) -> dict[str, Any]:
    response = client.post("/auth/validate", json={"token": token, "required_scopes": list(scopes)})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@contextlib.asynccontextmanager
async def in_process(
    backend: Backend, **settings: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """The app in process on ``backend``, its lifespan run: a client with the admin
    token, and its parts."""
    admin = generate_token()
    app = create_app(
        Settings(
            database_url=backend.database_url or f"sqlite:///{backend.directory / 'inproc.db'}",
            redis_url=None if backend.redis is None else backend.redis.url,
            redis_key_prefix="amplify" if backend.redis is None else backend.redis.prefix,
            auth_admin_token=admin,
            _env_file=None,
            **settings,
        )
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://auth",
            headers={"Authorization": f"Bearer {admin}"},
        ) as client,
    ):
        yield client, app.state.services
