"""The revocation stream starts once, never after stop, resumes after a fork from the
last event applied, and passes a gateway the base URL's credentials."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx

from amplify_auth_client import AuthClient, generate_token
from amplify_auth_client._cache import ValidationCache
from amplify_auth_client._subscription import RevocationSubscription
from tests.client.support import BASE_URL, valid
from tests.client.test_subscription import READY, Streams, event, stream
from tests.support.waiting import wait_for


@pytest.fixture
def subscription(api: respx.MockRouter) -> Iterator[tuple[RevocationSubscription, Streams]]:
    streams = Streams(stream(event("reset", "{}", "e:4"), READY))
    api.get("/auth/events").mock(side_effect=streams)
    cache: ValidationCache[object] = ValidationCache(maxsize=10, ttl=30, negative_ttl=5)
    options = {"base_url": BASE_URL, "timeout": httpx.Timeout(5.0), "headers": {}}
    made = RevocationSubscription(cache, http_options=options, where=BASE_URL)
    yield made, streams
    made.stop()


def test_starting_twice_runs_one_stream(
    subscription: tuple[RevocationSubscription, Streams],
) -> None:
    made, streams = subscription
    made.start()
    thread = made._thread
    made.start()
    assert made._thread is thread
    assert streams.done.wait(10)
    # One stream: its reset, then its reconnections, each resuming from e:4.
    assert [r.headers.get("last-event-id") for r in streams.requests[:2]] == [None, "e:4"]


def test_a_stopped_subscription_never_starts(
    subscription: tuple[RevocationSubscription, Streams],
) -> None:
    made, streams = subscription
    made.stop()
    made.start()
    assert (made.started, made.state, streams.requests) == (True, "off", [])


def test_after_a_fork_the_stream_starts_afresh_from_the_last_event(
    subscription: tuple[RevocationSubscription, Streams],
) -> None:
    made, streams = subscription
    made.start()
    assert streams.done.wait(10)
    assert made.last_event_id == "e:4"
    parent_loop, parent_task, parent_thread = made._loop, made._task, made._thread
    assert parent_loop is not None
    assert parent_task is not None
    assert parent_thread is not None
    # What the child sees: the parent's thread is gone, its place is free.
    assert made.after_fork() is True
    assert (made.state, made.started) == ("idle", False)
    # Here no fork took the parent's thread away: end it, so that every
    # request from now on is the new stream's.
    parent_loop.call_soon_threadsafe(parent_task.cancel)
    parent_thread.join(5)
    assert not parent_thread.is_alive()
    before = len(streams.requests)
    made.start()
    wait_for(lambda: len(streams.requests) > before)
    assert streams.requests[before].headers["last-event-id"] == "e:4"
    assert made._thread is not parent_thread


def test_after_a_fork_a_stopped_stream_stays_off(
    subscription: tuple[RevocationSubscription, Streams],
) -> None:
    made, _ = subscription
    made.stop()
    assert made.after_fork() is False
    assert made.state == "off"


def test_the_stream_carries_the_base_urls_credentials(api: respx.MockRouter) -> None:
    # A gateway in front of the server asks every request for them, the stream's too.
    streams = Streams()
    api.get("/auth/events").mock(side_effect=streams)
    api.post("/auth/validate").mock(return_value=valid())
    with AuthClient("http://svc:pw@auth.test", subscribe_revocations=True) as client:
        client.validate(generate_token())
        assert streams.done.wait(10)
    assert streams.requests[0].headers["authorization"] == "Basic c3ZjOnB3"
    assert streams.requests[0].url == f"{BASE_URL}/auth/events"
