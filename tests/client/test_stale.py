"""stale_if_error serves a flagged, recently-fresh positive answer only while the server is down."""

from __future__ import annotations

from typing import cast

import httpx
import pytest
import respx

from amplify_auth_client import (
    AsyncAuthClient,
    AuthClient,
    AuthServiceUnavailable,
    Reason,
)
from tests.client.support import BASE_URL, TOKEN_ID, FakeClock, error, invalid, valid

DOWN = httpx.ConnectError("connection refused")


def stale_client() -> AuthClient:
    return AuthClient(BASE_URL, cache_ttl=30, negative_cache_ttl=5, stale_if_error=60)


def test_served_stale_and_flagged_while_the_server_is_down(
    api: respx.MockRouter, token: str, clock: FakeClock
) -> None:
    client = stale_client()
    route = api.post("/auth/validate").mock(return_value=valid(["read"]))
    client.validate(token)
    clock.advance(31)
    route.side_effect = DOWN
    result = client.validate(token, ["read"])
    assert (result.valid, result.stale, result.cached) == (True, True, True)
    assert result.token_id == TOKEN_ID
    # The server was tried (with its retries) before falling back.
    assert route.call_count == 1 + 4
    short = client.validate(token, ["write"])
    assert (short.valid, short.reason, short.stale) == (False, "insufficient_scope", True)
    stats = client.cache_stats()
    assert (stats.stale, stats.errors) == (2, 2)


def test_stale_only_within_the_window(api: respx.MockRouter, token: str, clock: FakeClock) -> None:
    client = stale_client()
    route = api.post("/auth/validate").mock(return_value=valid())
    client.validate(token)
    route.side_effect = DOWN
    clock.advance(30 + 59.9)
    assert client.validate(token).stale
    clock.advance(0.1)
    with pytest.raises(AuthServiceUnavailable):
        client.validate(token)


def test_fresh_answers_come_back_when_the_server_does(
    api: respx.MockRouter, token: str, clock: FakeClock
) -> None:
    client = stale_client()
    route = api.post("/auth/validate").mock(side_effect=[valid(), DOWN, DOWN, DOWN, DOWN, valid()])
    client.validate(token)
    clock.advance(31)
    assert client.validate(token).stale
    result = client.validate(token)
    assert (result.valid, result.stale, result.cached) == (True, False, False)
    assert route.call_count == 6


def test_off_by_default_failure_is_closed(
    api: respx.MockRouter, token: str, clock: FakeClock
) -> None:
    client = AuthClient(BASE_URL, cache_ttl=30)
    route = api.post("/auth/validate").mock(return_value=valid())
    client.validate(token)
    clock.advance(31)
    route.side_effect = DOWN
    with pytest.raises(AuthServiceUnavailable):
        client.validate(token)


def test_never_past_the_tokens_expiry(api: respx.MockRouter, token: str, clock: FakeClock) -> None:
    client = stale_client()
    route = api.post("/auth/validate").mock(return_value=valid(expires_at=clock.in_(40)))
    client.validate(token)
    route.side_effect = DOWN
    clock.advance(35)
    assert client.validate(token).stale
    clock.advance(5)
    with pytest.raises(AuthServiceUnavailable):
        client.validate(token)


def test_a_seen_revocation_is_never_undone(
    api: respx.MockRouter, token: str, clock: FakeClock
) -> None:
    client = stale_client()
    route = api.post("/auth/validate")
    route.side_effect = [valid(), invalid("revoked", token_id=TOKEN_ID, name="billing")]
    client.validate(token)
    clock.advance(31)
    assert client.validate(token).reason == "revoked"
    clock.advance(6)  # past the negative TTL, well inside the old positive's window
    route.side_effect = DOWN
    with pytest.raises(AuthServiceUnavailable):
        client.validate(token)


def test_negative_answers_are_never_served_stale(
    api: respx.MockRouter, token: str, clock: FakeClock
) -> None:
    client = stale_client()
    route = api.post("/auth/validate").mock(return_value=invalid("unknown"))
    client.validate(token)
    clock.advance(6)
    route.side_effect = DOWN
    with pytest.raises(AuthServiceUnavailable):
        client.validate(token)


@pytest.mark.parametrize(
    "answer",
    [
        error(422, "invalid_request", "the request body does not match"),
        error(404, "not_found", "no such route"),
        error(500, "internal_error", "a bug"),
        httpx.Response(200, text="<html>login</html>"),
        httpx.Response(200, json={"valid": True, "scopes": "read"}),
        # A newer server's richer reason for a revoked token.
        httpx.Response(200, json={"valid": False, "reason": {"code": "revoked"}}),
        httpx.Response(200, json={"valid": False, "reason": "revoked", "expires_at": "soon"}),
        # Impossible, since we ask with no scopes: not a yes either.
        httpx.Response(200, json={"valid": False, "reason": "insufficient_scope", "scopes": []}),
    ],
    ids=[
        "HTTP 422",
        "HTTP 404",
        "HTTP 500",
        "HTML",
        "unreadable positive",
        "reason object",
        "unreadable negative",
        "insufficient_scope",
    ],
)
def test_a_server_that_answered_is_not_an_outage(
    api: respx.MockRouter, token: str, clock: FakeClock, answer: httpx.Response
) -> None:
    # Whatever it said, it may be its way of saying "not this token": no stale yes.
    client = stale_client()
    route = api.post("/auth/validate").mock(return_value=valid())
    client.validate(token)
    clock.advance(31)
    route.return_value = answer
    try:
        result = client.validate(token)
    except AuthServiceUnavailable:
        pass
    else:
        assert not result.valid
        assert not result.stale
    assert client.cache_stats().stale == 0


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_and_overload_answers_count_as_down(
    api: respx.MockRouter, token: str, clock: FakeClock, status: int
) -> None:
    client = stale_client()
    route = api.post("/auth/validate").mock(return_value=valid())
    client.validate(token)
    clock.advance(31)
    route.return_value = error(status, "unavailable", "the token database is unreachable")
    assert client.validate(token).stale


@pytest.mark.anyio
async def test_async_client_serves_stale_too(
    api: respx.MockRouter, token: str, clock: FakeClock
) -> None:
    route = api.post("/auth/validate").mock(return_value=valid())
    async with AsyncAuthClient(BASE_URL, cache_ttl=30, stale_if_error=60) as client:
        await client.validate(token)
        clock.advance(31)
        route.side_effect = DOWN
        result = await client.validate(token)
        assert (result.valid, result.stale) == (True, True)
        clock.advance(60)
        with pytest.raises(AuthServiceUnavailable):
            await client.validate(token)


def test_an_uncacheable_negative_answer_also_ends_the_stale_window(
    api: respx.MockRouter, token: str, clock: FakeClock
) -> None:
    client = stale_client()
    route = api.post("/auth/validate")
    route.side_effect = [valid(), invalid("suspended"), DOWN, DOWN, DOWN, DOWN]
    client.validate(token)
    clock.advance(31)
    assert client.validate(token).reason == cast(Reason, "suspended")
    with pytest.raises(AuthServiceUnavailable):
        client.validate(token)
