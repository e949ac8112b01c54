"""The pytest plugin's fixtures test a FastAPI app and a StatelessService with no patching."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI

from amplify_auth_client import AuthClient, Authenticator, Caller
from amplify_auth_client.integrations.fastapi import RequireScopes
from amplify_auth_client.pytest_plugin import TokenFactory
from amplify_auth_client.testing import FakeAuthServer
from tests.integrations.servers import uvicorn_serving


def test_a_fastapi_app_built_from_the_environment_sees_the_fake(
    amplify_auth_server: FakeAuthServer, amplify_token: TokenFactory
) -> None:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await Authenticator.default().aclose()  # the client of this loop, closed with it

    app = FastAPI(lifespan=lifespan)

    @app.get("/orders")
    async def orders(caller: Caller = Depends(RequireScopes("orders:read"))) -> dict[str, str]:
        return {"caller": caller.name}

    reader = amplify_token(scopes=["orders:read"], name="reader")
    with uvicorn_serving(app) as url:
        ok = httpx.get(url + "/orders", headers={"Authorization": f"Bearer {reader.token}"})
        assert ok.json() == {"caller": "reader"}
        amplify_auth_server.revoke(reader.token_id)
        gone = httpx.get(url + "/orders", headers={"Authorization": f"Bearer {reader.token}"})
        assert gone.status_code == 401


def test_the_client_fixture_talks_to_the_same_fake(
    amplify_client: AuthClient, amplify_token: TokenFactory
) -> None:
    token = amplify_token(scopes=["a"]).token
    assert amplify_client.validate(token, ["a"]).valid
    # Newest first: the token the factory just made leads the listing.
    assert amplify_client.list_tokens()[0].name == "test-token"


def test_a_token_with_an_owner_is_its_teams(
    amplify_auth_server: FakeAuthServer, amplify_client: AuthClient, amplify_token: TokenFactory
) -> None:
    mine = amplify_token(scopes=["a"], name="mine", owner="team-a")
    assert mine.owner == "team-a"
    theirs = amplify_token(scopes=["a"], name="theirs", owner="team-b")
    # With tokens:manage, a team's token manages that team's tokens only.
    delegate = amplify_token(scopes=["tokens:manage", "a"], name="lead", owner="team-a")
    with amplify_auth_server.client(admin_token=delegate.token, cache_ttl=0) as lead:
        names = {t.name for t in lead.list_tokens()}
        assert "mine" in names
        assert "theirs" not in names
    assert amplify_client.validate(theirs.token, ["a"]).owner == "team-b"
    with pytest.raises(ValueError, match="owner"):
        amplify_token(scopes=["a"], owner="Not An Owner")


def test_the_plugin_is_registered_for_any_project(tmp_path: Path) -> None:
    # A project of its own, which only installed the package: the fixtures are there.
    (tmp_path / "test_service.py").write_text(
        textwrap.dedent(
            """
            def test_fixture(amplify_token):
                assert amplify_token(scopes=["x"]).scopes == ("x",)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
