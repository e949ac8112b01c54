"""One call's max_staleness and stale_if_error: a risky action asks, a read may ride an outage."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
import respx

from amplify_auth_client import AsyncAuthClient, AuthClient, AuthConfigError, AuthServiceUnavailable
from tests.client.support import BASE_URL, FakeClock, invalid, valid
from tests.support.waiting import wait_for

DOWN = httpx.ConnectError("connection refused")


def test_max_staleness_zero_asks_the_server_every_time(
    api: respx.MockRouter, token: str, clock: FakeClock
) -> None:
    client = AuthClient(BASE_URL, cache_ttl=30)
    route = api.post("/auth/validate").mock(return_value=valid(["read"]))
    assert client.validate(token).valid
    assert client.validate(token).cached
    fresh = client.validate(token, ["read"], max_staleness=0)
    assert (fresh.valid, fresh.cached) == (True, False)
    assert route.call_count == 2
    # The answer it fetched serves the ordinary callers' hits afterwards.
    assert client.validate(token).cached
    assert route.call_count == 2


def test_max_staleness_accepts_answers_up_to_that_age(
    api: respx.MockRouter, token: str, clock: FakeClock
) -> None:
    client = AuthClient(BASE_URL, cache_ttl=30)
    route = api.post("/auth/validate").mock(return_value=valid())
    client.validate(token)
    clock.advance(4.9)
    assert client.validate(token, max_staleness=5).cached
    clock.advance(0.1)
    assert not client.validate(token, max_staleness=5).cached
    assert route.call_count == 2
    # Never longer than cache_ttl: the entry is not trusted past it anyway.
    clock.advance(30)
    assert not client.validate(token, max_staleness=300).cached


def test_max_staleness_applies_to_negative_answers_too(
    api: respx.MockRouter, token: str, clock: FakeClock
) -> None:
    # An expired token may have been extended since: a strict action asks.
    client = AuthClient(BASE_URL)
    route = api.post("/auth/validate")
    route.side_effect = [invalid("expired"), valid()]
    assert client.validate(token).reason == "expired"
    assert client.validate(token, max_staleness=0).valid
    assert route.call_count == 2


def test_strict_callers_share_one_request_in_flight(api: respx.MockRouter, token: str) -> None:
    client = AuthClient(BASE_URL)
    release = threading.Event()
    arrived = threading.Barrier(2)

    def slow(request: httpx.Request) -> httpx.Response:
        arrived.wait(timeout=10)
        release.wait(timeout=10)
        return valid()

    route = api.post("/auth/validate").mock(side_effect=slow)
    results: list[bool] = []

    def strict() -> None:
        results.append(client.validate(token, max_staleness=0).valid)

    first = threading.Thread(target=strict)
    first.start()
    arrived.wait(timeout=10)  # the first request is being answered
    second = threading.Thread(target=strict)
    second.start()
    # The second caller joins the flight rather than sending its own.
    wait_for(lambda: client.cache_stats().coalesced == 1)
    release.set()
    first.join(timeout=10)
    second.join(timeout=10)
    assert results == [True, True]
    assert route.call_count == 1


def test_one_calls_stale_if_error_rides_an_outage_the_client_would_not(
    api: respx.MockRouter, token: str, clock: FakeClock
) -> None:
    client = AuthClient(BASE_URL, cache_ttl=30)  # no stale_if_error of its own
    route = api.post("/auth/validate").mock(return_value=valid(["read"]))
    client.validate(token)
    clock.advance(31)
    route.side_effect = DOWN
    with pytest.raises(AuthServiceUnavailable):
        client.validate(token, ["read"])
    served = client.validate(token, ["read"], stale_if_error=60)
    assert (served.valid, served.stale) == (True, True)
    clock.advance(60)
    with pytest.raises(AuthServiceUnavailable):
        client.validate(token, ["read"], stale_if_error=60)


def test_stale_if_error_counts_from_the_calls_own_freshness(
    api: respx.MockRouter, token: str, clock: FakeClock
) -> None:
    client = AuthClient(BASE_URL, cache_ttl=30)
    route = api.post("/auth/validate").mock(return_value=valid())
    client.validate(token)
    route.side_effect = DOWN
    clock.advance(10)
    # Fresh for its own max_staleness for 5 s, then 4 s of grace: over by now.
    with pytest.raises(AuthServiceUnavailable):
        client.validate(token, max_staleness=5, stale_if_error=4)
    assert client.validate(token, max_staleness=5, stale_if_error=6).stale


@pytest.mark.parametrize("option", ["max_staleness", "stale_if_error"])
@pytest.mark.parametrize("value", [-1, float("nan"), float("inf")])
def test_bad_per_call_values_are_refused(
    api: respx.MockRouter, token: str, option: str, value: float
) -> None:
    api.post("/auth/validate").mock(return_value=valid())
    client = AuthClient(BASE_URL)
    with pytest.raises(AuthConfigError, match=option):
        client.validate(token, **{option: value})  # type: ignore[arg-type]


def test_the_async_client_takes_the_same_options(
    api: respx.MockRouter, token: str, clock: FakeClock
) -> None:
    route = api.post("/auth/validate").mock(return_value=valid(["read"]))

    async def run() -> tuple[bool, bool, bool]:
        async with AsyncAuthClient(BASE_URL, cache_ttl=30) as client:
            await client.validate(token)
            strict = await client.validate(token, max_staleness=0)
            clock.advance(31)
            route.side_effect = DOWN
            stale = await client.validate(token, ["read"], stale_if_error=60)
            return strict.cached, stale.valid, stale.stale

    assert asyncio.run(run()) == (False, True, True)
