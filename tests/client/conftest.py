"""Fixtures of the client tests: instant retries, a hand-moved clock, a mocked server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx

from amplify_auth_client import _cache, generate_token
from amplify_auth_client.testing import set_testing
from tests.client.support import BASE_URL, FakeClock


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _instant_retries() -> Iterator[None]:
    # Outage tests make up to four attempts each; none of them should wait.
    with set_testing(True):
        yield


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Replace the cache's clocks with one the test moves."""
    fake = FakeClock()
    monkeypatch.setattr(_cache, "monotonic", fake.monotonic)
    monkeypatch.setattr(_cache, "wall_time", fake.time)
    return fake


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """The auth server, mocked; a request to any route not set up fails the test."""
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
def token() -> str:
    return generate_token()
