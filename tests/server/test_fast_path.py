"""The validation fast path and the FastAPI route it stands in front of answer alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from amplify_auth_client import generate_token
from amplify_auth_server import Settings, create_app
from amplify_auth_server.middleware import ValidateFastPath

pytestmark = pytest.mark.anyio


def _app(tmp_path: Path, admin: str, *, fast: bool) -> FastAPI:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'fast.db'}", auth_admin_token=admin, _env_file=None
    )
    app = create_app(settings)
    if not fast:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not ValidateFastPath]
    return app


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    admin = generate_token()
    fast, routed = _app(tmp_path, admin, fast=True), _app(tmp_path, admin, fast=False)
    headers = {"Authorization": f"Bearer {admin}"}
    async with (
        fast.router.lifespan_context(fast),
        routed.router.lifespan_context(routed),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=fast), base_url="http://fast", headers=headers
        ) as one,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=routed), base_url="http://routed", headers=headers
        ) as two,
    ):
        yield one, two


async def test_both_paths_give_the_same_answers(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    fast, routed = clients
    created = (await fast.post("/auth/tokens", json={"name": "n", "scopes": ["read"]})).json()
    revoked = (await fast.post("/auth/tokens", json={"name": "r", "scopes": ["read"]})).json()
    await fast.post(f"/auth/tokens/{revoked['token_id']}/revoke")
    bodies: list[bytes] = [
        b'{"token": "%s"}' % created["token"].encode(),
        b'{"token": "%s", "required_scopes": ["read"]}' % created["token"].encode(),
        b'{"token": "%s", "required_scopes": ["write"]}' % created["token"].encode(),
        b'{"token": "%s"}' % revoked["token"].encode(),
        b'{"token": "%s"}' % generate_token().encode(),
        b'{"token": "nope"}',
        b'{"token": 5}',
        b"{not json",
    ]
    for body in bodies:
        one = await fast.post("/auth/validate", content=body)
        two = await routed.post("/auth/validate", content=body)
        assert (one.status_code, one.json()) == (two.status_code, two.json()), body
        assert one.headers["content-type"] == two.headers["content-type"] == "application/json"
