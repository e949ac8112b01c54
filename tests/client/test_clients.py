"""The two clients have the same methods, close their pools, and return frozen results."""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import FrozenInstanceError
from typing import Any

import httpx
import pytest
import respx

from amplify_auth_client import (
    AsyncAuthClient,
    AuthClient,
    AuthConfigError,
    AuthServiceUnavailable,
    CacheStats,
    ValidationResult,
    generate_token,
)
from tests.client.support import BASE_URL, TOKEN_ID, valid

METHODS = [
    "validate",
    "create_token",
    "list_tokens",
    "get_token",
    "revoke_token",
    "extend_token",
    "token_audit",
    "audit",
]


def test_async_twins_have_the_sync_signatures() -> None:
    for name in METHODS:
        sync, asynchronous = getattr(AuthClient, name), getattr(AsyncAuthClient, name)
        assert inspect.iscoroutinefunction(asynchronous), name
        assert not inspect.iscoroutinefunction(sync), name
        assert inspect.signature(sync) == inspect.signature(asynchronous), name
    for name in ("cache_stats", "clear_cache"):
        assert not inspect.iscoroutinefunction(getattr(AsyncAuthClient, name))


def test_the_sync_context_manager_closes_the_pool(api: respx.MockRouter, token: str) -> None:
    api.post("/auth/validate").mock(return_value=valid())
    with AuthClient(BASE_URL, admin_token=generate_token()) as client:
        client.validate(token)
    assert client._http.is_closed
    # Cached answers still work; anything needing the network says why it can't.
    assert client.validate(token).cached
    with pytest.raises(AuthServiceUnavailable, match="AuthClient was closed"):
        client.get_token(TOKEN_ID)
    with pytest.raises(AuthServiceUnavailable, match="create a new client"):
        client.validate(generate_token())


@pytest.mark.anyio
async def test_the_async_context_manager_closes_the_pool(api: respx.MockRouter, token: str) -> None:
    api.post("/auth/validate").mock(return_value=valid())
    async with AsyncAuthClient(BASE_URL) as client:
        await client.validate(token)
    assert client._http.is_closed
    with pytest.raises(AuthServiceUnavailable, match="AsyncAuthClient was closed"):
        await client.validate(generate_token())  # a miss: it needs the network


def test_close_is_explicit_too(api: respx.MockRouter) -> None:
    client = AuthClient(BASE_URL)
    client.close()
    assert client._http.is_closed


def test_a_result_is_frozen_and_its_truth_is_validity() -> None:
    ok = ValidationResult(valid=True, scopes=("read",))
    denied = ValidationResult(valid=False, reason="revoked")
    assert ok
    assert not denied
    with pytest.raises(FrozenInstanceError):
        ok.valid = False  # type: ignore[misc]
    assert not hasattr(ok, "__dict__")  # slotted


def test_cache_stats_derived_figures() -> None:
    stats = CacheStats(hits=90, misses=10, coalesced=4, errors=1, stale=0, size=6, maxsize=100)
    assert stats.requests == 6
    assert stats.hit_ratio == 0.9
    assert CacheStats(0, 0, 0, 0, 0, 0, 10).hit_ratio == 0.0


def test_closing_while_a_call_is_under_way_raises_ours(api: respx.MockRouter) -> None:
    # The retry found httpx's client closed: a raw RuntimeError, once.
    client = AuthClient(BASE_URL, admin_token=generate_token())

    def close_then_fail(request: httpx.Request) -> httpx.Response:
        client.close()
        raise httpx.ReadError("connection closed", request=request)

    api.get("/auth/tokens").mock(side_effect=close_then_fail)
    with pytest.raises(AuthServiceUnavailable, match="AuthClient was closed"):
        client.list_tokens()


def test_closing_just_before_httpx_sends_raises_ours(
    api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Closed between our check and httpx's own: its RuntimeError becomes ours.
    client = AuthClient(BASE_URL, admin_token=generate_token())
    route = api.get("/auth/tokens").mock(return_value=httpx.Response(200, json=[]))
    check = client._before_attempt

    def check_then_close(*args: Any) -> None:
        check(*args)
        client.close()

    monkeypatch.setattr(client, "_before_attempt", check_then_close)
    with pytest.raises(AuthServiceUnavailable, match="AuthClient was closed") as raised:
        client.list_tokens()
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert route.call_count == 0


@pytest.mark.anyio
async def test_closing_an_async_client_under_way_raises_ours(api: respx.MockRouter) -> None:
    client = AsyncAuthClient(BASE_URL)

    async def close_then_fail(request: httpx.Request) -> httpx.Response:
        await client.aclose()
        raise httpx.ReadError("connection closed", request=request)

    api.post("/auth/validate").mock(side_effect=close_then_fail)
    with pytest.raises(AuthServiceUnavailable, match="AsyncAuthClient was closed"):
        await client.validate(generate_token())


def test_an_async_client_belongs_to_the_first_loop_it_is_used_in(
    api: respx.MockRouter, token: str
) -> None:
    # From a second loop it once failed with raw RuntimeErrors, and stayed broken.
    api.post("/auth/validate").mock(return_value=valid())
    client = AsyncAuthClient(BASE_URL, admin_token=generate_token())
    assert asyncio.run(client.validate(token)).valid
    with pytest.raises(AuthConfigError, match="one AsyncAuthClient per event loop"):
        asyncio.run(client.validate(generate_token()))
    with pytest.raises(AuthConfigError, match="create it inside the loop that uses it"):
        asyncio.run(client.list_tokens())
    # A cache hit needs no loop at all.
    assert asyncio.run(client.validate(token)).cached
    asyncio.run(client.aclose())
