"""The subscription reads the event stream strictly: an event evicts its token only, a
reset or an unreadable event drops everything, a reconnection resumes from the last
event applied; and it is on by default only where it can work."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future

import httpx
import pytest
import respx

from amplify_auth_client import (
    AsyncAuthClient,
    AuthClient,
    AuthConfigError,
    generate_token,
    hash_token,
)
from amplify_auth_client._cache import Answer, ValidationCache
from amplify_auth_client.testing import FakeAuthServer, set_testing
from tests.client.support import BASE_URL, valid
from tests.support.waiting import wait_for


def stream(*events: str) -> httpx.Response:
    return httpx.Response(
        200,
        headers={"content-type": "text/event-stream"},
        content="".join(events).encode(),
    )


def event(kind: str, data: str, event_id: str | None = None) -> str:
    lines = [f"event: {kind}", f"data: {data}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    return "\n".join(lines) + "\n\n"


READY = event("ready", '{"keepalive": 15}')


class Streams:
    """Answers each connection with the next response; then 503 (so no busy loop)."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []
        self.done = threading.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.responses:
            return self.responses.pop(0)
        self.done.set()
        return httpx.Response(503, json={"error": "unavailable", "detail": "later"})


@pytest.fixture
def subscribed_client(api: respx.MockRouter) -> Iterator[Callable[[Streams], AuthClient]]:
    clients: list[AuthClient] = []

    def make(streams: Streams) -> AuthClient:
        api.get("/auth/events").mock(side_effect=streams)
        client = AuthClient(BASE_URL, cache_ttl=600, subscribe_revocations=True)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _one_revocation(api: respx.MockRouter, around: str = "") -> None:
    """A stream that opens, then (once two tokens are cached) revokes one of them, with
    ``around`` before and after the event: only that token is evicted, nothing reset."""
    revoked, kept = generate_token(), generate_token()
    api.post("/auth/validate").mock(return_value=valid())
    gate = threading.Event()

    async def body() -> AsyncIterator[bytes]:
        yield (event("reset", "{}", "e:1") + READY).encode()
        await asyncio.to_thread(gate.wait, 10)  # until the test has cached its tokens
        data = f'{{"token_hash": "{hash_token(revoked)}", "version": 2}}'
        yield around.encode()
        yield (around + event("revoked", data, "e:2") + around).encode()

    open_stream = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())
    api.get("/auth/events").mock(side_effect=Streams(open_stream))
    with AuthClient(BASE_URL, cache_ttl=600, subscribe_revocations=True) as client:
        client.validate(generate_token())  # starts the subscription
        wait_for(lambda: client.cache_stats().subscribed)
        client.validate(revoked)
        client.validate(kept)
        gate.set()
        wait_for(lambda: client.cache_stats().events == 1)
        assert client.validate(revoked).cached is False
        assert client.validate(kept).cached is True
        assert client.cache_stats().resets == 1  # the stream's opening reset only


def test_an_event_evicts_its_token_and_no_other(api: respx.MockRouter) -> None:
    _one_revocation(api)


def test_keepalive_comments_are_not_events_and_keep_the_cache(api: respx.MockRouter) -> None:
    # httpx-sse yields an empty "message" at the blank line after each
    # comment once an id was seen; read as an unreadable event, each
    # keepalive emptied the cache (every 15 s, in every service).
    _one_revocation(api, around=": keepalive\n\n" * 3)


def test_a_reset_or_an_unreadable_event_drops_everything(
    api: respx.MockRouter,
) -> None:
    tokens = [generate_token() for _ in range(3)]
    api.post("/auth/validate").mock(return_value=valid())
    client = AuthClient(BASE_URL, cache_ttl=600, subscribe_revocations=False)
    cache = client._cache
    for token in tokens:
        client.validate(token)
    assert cache.stats().size == 3

    from amplify_auth_client._subscription import RevocationSubscription

    subscription = RevocationSubscription(cache, http_options={}, where=BASE_URL)
    subscription._apply("revoked", "e:1", f'{{"token_hash": "{hash_token(tokens[0])}"}}')
    assert cache.stats().size == 2
    assert client.validate(tokens[1]).cached
    for unreadable in ("not json", "{}", '{"token_hash": 5}', "[]"):
        for token in tokens[1:]:
            client.validate(token)
        subscription._apply("revoked", "e:2", unreadable)
        assert cache.stats().size == 0, unreadable
    subscription._apply("reset", "e:3", "{}")
    assert (subscription.events, subscription.resets) == (1, 5)
    assert subscription.last_event_id == "e:3"
    client.close()


def test_a_reconnection_resumes_from_the_last_event_applied(
    subscribed_client: Callable[[Streams], AuthClient], api: respx.MockRouter
) -> None:
    api.post("/auth/validate").mock(return_value=valid())
    streams = Streams(
        stream(event("reset", "{}", "e:1"), READY),
        stream(READY, event("extended", f'{{"token_hash": "{"a" * 64}"}}', "e:7")),
    )
    client = subscribed_client(streams)
    client.validate(generate_token())
    assert streams.done.wait(10)
    first, second, third = streams.requests[:3]
    assert "last-event-id" not in first.headers
    assert second.headers["last-event-id"] == "e:1"
    assert third.headers["last-event-id"] == "e:7"
    assert first.headers["accept"] == "text/event-stream"
    stats = client.cache_stats()
    assert (stats.events, stats.resets) == (1, 1)


def test_a_server_without_the_stream_is_unavailable_not_an_error(
    subscribed_client: Callable[[Streams], AuthClient], api: respx.MockRouter
) -> None:
    api.post("/auth/validate").mock(return_value=valid())
    not_found = httpx.Response(404, json={"error": "not_found", "detail": "no such route"})
    streams = Streams(*[not_found] * 5)
    client = subscribed_client(streams)
    assert client.validate(generate_token()).valid
    wait_for(lambda: client.cache_stats().subscription == "unavailable")
    # Asked again later, not at once: an older server will not grow a stream soon.
    assert len(streams.requests) == 1


def test_a_stream_answered_with_something_else_is_retried(
    subscribed_client: Callable[[Streams], AuthClient], api: respx.MockRouter
) -> None:
    api.post("/auth/validate").mock(return_value=valid())
    html = httpx.Response(200, headers={"content-type": "text/html"}, content=b"<html>")
    streams = Streams(html)
    client = subscribed_client(streams)
    client.validate(generate_token())
    assert streams.done.wait(10)
    assert client.cache_stats().subscription == "connecting"


# -- the cache's part -------------------------------------------------------------


def test_evict_detaches_that_tokens_flight_only() -> None:
    cache: ValidationCache[Future[Answer]] = ValidationCache(maxsize=10, ttl=30, negative_ttl=5)
    answer = Answer(True, ("read",), "tok_1", "x", None, None)
    changed, other = hash_token(generate_token()), hash_token(generate_token())
    flight, generation, fetch = cache.join(changed, (), Future)  # type: ignore[misc]
    other_flight, other_generation, _ = cache.join(other, (), Future)  # type: ignore[misc]
    assert fetch
    cache.evict(changed)
    # A validation starting now does not join the old flight.
    newer, _, fetches_again = cache.join(changed, (), Future)  # type: ignore[misc]
    assert fetches_again
    assert newer is not flight
    # The old flight's answer, perhaps from before the change, is not stored.
    cache.settle(changed, flight, generation, answer)
    cache.settle(other, other_flight, other_generation, answer)
    assert cache.stats().size == 1
    assert changed not in cache._entries  # type: ignore[operator]


# -- when it is on ----------------------------------------------------------------


def test_on_by_default_off_with_a_transport_or_under_testing() -> None:
    def state(client: AuthClient | AsyncAuthClient) -> str:
        return client.cache_stats().subscription

    with set_testing(False):
        assert state(AuthClient(BASE_URL)) == "idle"
        assert state(AsyncAuthClient(BASE_URL)) == "idle"
        assert state(AuthClient(BASE_URL, transport=FakeAuthServer().transport())) == "off"
    assert state(AuthClient(BASE_URL)) == "off"  # under set_testing(True)
    assert state(AuthClient(BASE_URL, subscribe_revocations=True)) == "idle"


@pytest.mark.parametrize("value", ["yes", 1, 0.0])
def test_subscribe_revocations_must_be_a_bool_or_none(value: object) -> None:
    with pytest.raises(AuthConfigError, match="subscribe_revocations"):
        AuthClient(BASE_URL, subscribe_revocations=value)  # type: ignore[arg-type]


def test_asking_for_it_with_a_transport_is_refused() -> None:
    with pytest.raises(AuthConfigError, match="transport"):
        AuthClient(BASE_URL, transport=FakeAuthServer().transport(), subscribe_revocations=True)
