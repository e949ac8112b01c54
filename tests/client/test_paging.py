"""iter_tokens and iter_audit, on both clients, yield every match once, newest first,
and fetch a page only when the loop reaches it."""

from __future__ import annotations

import httpx
import pytest

from amplify_auth_client import AsyncAuthClient, AuthClient
from amplify_auth_client.testing import FakeAuthServer

NAMES = [f"svc-{i}" for i in range(5)]


class Counted:
    """FakeAuthServer behind a transport that counts the listing pages asked for."""

    def __init__(self) -> None:
        self.server = FakeAuthServer()
        self.pages: list[httpx.URL] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path in ("/auth/tokens", "/auth/audit"):
            self.pages.append(request.url)
        return self.server.handle(request)

    def client(self) -> AuthClient:
        transport = httpx.MockTransport(self.handle)
        return AuthClient(self.server.base_url, transport=transport, admin_token=self.admin)

    def async_client(self) -> AsyncAuthClient:
        transport = httpx.MockTransport(self.handle)
        return AsyncAuthClient(self.server.base_url, transport=transport, admin_token=self.admin)

    @property
    def admin(self) -> str:
        return self.server.admin_token


@pytest.fixture
def world() -> Counted:
    counted = Counted()
    with counted.server.client() as auth:
        for name in NAMES:
            auth.create_token(name, ["read"])
        auth.create_token("other", ["write"])
    return counted


def test_iter_tokens_walks_every_page(world: Counted) -> None:
    with world.client() as auth:
        names = [t.name for t in auth.iter_tokens(name="svc", page_size=2)]
    assert names == NAMES[::-1]
    assert len(world.pages) == 3  # 2 + 2 + 1
    assert [u.params.get("cursor") is None for u in world.pages] == [True, False, False]


def test_iter_tokens_fetches_only_the_pages_the_loop_reaches(world: Counted) -> None:
    with world.client() as auth:
        first = next(iter(auth.iter_tokens(name="svc", page_size=2)))
    assert first.name == "svc-4"
    assert len(world.pages) == 1


def test_iter_audit_walks_every_page_with_its_filters(world: Counted) -> None:
    with world.client() as auth:
        created = [e for e in auth.iter_audit(action="create", page_size=4)]
        one = auth.list_tokens(name="svc-2")[0]
        trail = list(auth.iter_audit(token_id=one.token_id, page_size=1))
    assert [e.action for e in created] == ["create"] * 6
    assert len({e.token_id for e in created}) == 6
    assert [e.token_id for e in trail] == [one.token_id]
    assert all(u.params["action"] == "create" for u in world.pages[:2])


@pytest.mark.anyio
async def test_the_async_iterators_walk_every_page_too(world: Counted) -> None:
    async with world.async_client() as auth:
        names = [t.name async for t in auth.iter_tokens(name="svc", page_size=2)]
        assert len(world.pages) == 3
        actions = [e.action async for e in auth.iter_audit(action="create", page_size=4)]
        async for _ in auth.iter_tokens(scope="write", page_size=1):
            break
    assert names == NAMES[::-1]
    assert actions == ["create"] * 6
    assert len(world.pages) == 3 + 2 + 1
