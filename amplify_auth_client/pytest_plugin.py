"""The pytest plugin (loaded through the ``pytest11`` entry point): test a service without
patching anything of ours.

Fixtures, all function-scoped:

=========================  ====================================================
fixture                    gives
=========================  ====================================================
``amplify_auth_server``    a :class:`~amplify_auth_client.testing.FakeAuthServer`
                           served on a loopback port; ``AUTH_SERVICE_URL`` points
                           at it for the test, and the process's shared
                           authenticator (every integration's default) reads it
                           anew; retries do not wait (``set_testing``)
``amplify_token``          a factory: ``amplify_token(scopes=["orders:read"])``
                           mints a token on that server and returns its
                           :class:`~amplify_auth_client.CreatedToken`
``amplify_client``         an :class:`~amplify_auth_client.AuthClient` wired to
                           it (cache off, so revocations show at once)
=========================  ====================================================

::

    def test_orders_need_a_scope(amplify_token):
        reader = amplify_token(scopes=["orders:read"])
        response = client.get("/orders", headers={"Authorization": f"Bearer {reader.token}"})
        assert response.status_code == 200

``AUTH_CACHE_TTL`` is set to 0 for the test too, so that a service's own
clients (built from the environment) also see ``server.revoke(...)`` at
once; the fake has no revocation stream.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from amplify_auth_client import AuthClient, CreatedToken
    from amplify_auth_client.testing import FakeAuthServer

#: What ``amplify_token`` is: keyword arguments in, a minted token out.
TokenFactory = Callable[..., "CreatedToken"]


@pytest.fixture
def amplify_auth_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAuthServer]:
    """A fake auth server on a loopback port, which ``AUTH_SERVICE_URL`` names."""
    from amplify_auth_client import Authenticator
    from amplify_auth_client._fake_http import serving
    from amplify_auth_client.testing import FakeAuthServer, set_testing

    server = FakeAuthServer()
    with set_testing(), serving(server) as url:
        monkeypatch.setenv("AUTH_SERVICE_URL", url)
        monkeypatch.setenv("AUTH_CACHE_TTL", "0")
        Authenticator.default().reset()
        try:
            yield server
        finally:
            Authenticator.default().reset()


@pytest.fixture
def amplify_token(amplify_auth_server: FakeAuthServer) -> TokenFactory:
    """Mint tokens on :func:`amplify_auth_server`: ``amplify_token(scopes=[...], name=...)``;
    ``owner=`` gives the token its team (with ``tokens:manage``, a delegated admin)."""

    def mint(
        *,
        scopes: Collection[str] = (),
        name: str = "test-token",
        expires_at: datetime | None = None,
        owner: str | None = None,
    ) -> CreatedToken:
        return amplify_auth_server.add_token(name, scopes, expires_at=expires_at, owner=owner)

    return mint


@pytest.fixture
def amplify_client(amplify_auth_server: FakeAuthServer) -> Iterator[AuthClient]:
    """An :class:`~amplify_auth_client.AuthClient` on the fake, admin token included."""
    with amplify_auth_server.client(cache_ttl=0) as client:
        yield client
