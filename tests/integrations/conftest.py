"""A real auth server for the integration tests, its tokens, and instant SDK retries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from amplify_auth_client import AsyncAuthClient, AuthClient, Authenticator, generate_token
from amplify_auth_client.testing import set_testing
from tests.conftest import insert_token
from tests.integrations.apps import REALM, SCOPE
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.services import free_port


@pytest.fixture(autouse=True, scope="module")
def _instant_retries() -> Iterator[None]:
    # The auth-server-down cases make four attempts each; none of them waits.
    with set_testing(True):
        yield


@dataclass(frozen=True)
class Tokens:
    reader: str
    other: str
    revoked: str
    expired: str


@pytest.fixture(scope="module")
def auth_backend(tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return Backend("embedded", tmp_path_factory.mktemp("auth"))


@pytest.fixture(scope="module")
def auth_server(auth_backend: Backend) -> Iterator[ServerProcess]:
    with running_server(auth_backend) as process:
        yield process


@pytest.fixture(scope="module")
def tokens(auth_server: ServerProcess, auth_backend: Backend) -> Tokens:
    with AuthClient(auth_server.base_url, admin_token=auth_server.admin_token) as admin:
        reader = admin.create_token("reader", [SCOPE]).token
        other = admin.create_token("other", ["billing:read"]).token
        revoked = admin.create_token("revoked", [SCOPE])
        admin.revoke_token(revoked.token_id)
    expired, _ = insert_token(
        auth_backend,
        name="expired",
        scopes=(SCOPE,),
        expires_at=datetime.now(UTC) - timedelta(days=1),
    )
    return Tokens(reader, other, revoked.token, expired)


def authenticator(url: str) -> Authenticator:
    """An authenticator of the test's own on ``url``: cache on, as in production."""
    return Authenticator(
        realm=REALM, client=AuthClient(url), async_client=lambda: AsyncAuthClient(url)
    )


@pytest.fixture(scope="module")
def up(auth_server: ServerProcess) -> Iterator[Authenticator]:
    auth = authenticator(auth_server.base_url)
    yield auth
    auth.close()


@pytest.fixture(scope="module")
def down() -> Iterator[Authenticator]:
    # Nothing listens there: every validation is refused at connect.
    auth = authenticator(f"http://127.0.0.1:{free_port()}")
    yield auth
    auth.close()


@pytest.fixture
def unknown_token() -> str:
    return generate_token()
