"""A validation whose request fails in a way nobody planned (a transport's bug, a
Ctrl-C in the fetching thread) fails closed for every caller, and is not remembered."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest

from amplify_auth_client import AuthClient, AuthServiceUnavailable, generate_token
from tests.client.support import BASE_URL, valid
from tests.support.waiting import wait_for

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler) -> AuthClient:
    return AuthClient(
        BASE_URL, transport=httpx.MockTransport(handler), admin_token=generate_token()
    )


# A RuntimeError is also what httpx raises on a closed client: only then is it "closed".
BUGS = pytest.mark.parametrize("bug", [ValueError, RuntimeError])


@BUGS
def test_a_transports_bug_is_unavailable_with_the_bug_as_cause(bug: type[Exception]) -> None:
    calls: list[httpx.Request] = []

    def broken(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise bug("a bug in a custom transport")
        return valid()

    with client(broken) as auth:
        token = generate_token()
        with pytest.raises(AuthServiceUnavailable, match=rf"unexpectedly \({bug.__name__}\)") as e:
            auth.validate(token)
        assert isinstance(e.value.__cause__, bug)
        # Never "valid", and not retried as if it were a network error: one request...
        assert len(calls) == 1
        # ...and nothing remembered: the next call asks again.
        assert auth.validate(token).valid
        assert len(calls) == 2


@BUGS
def test_a_management_call_lets_a_bug_through_unchanged(bug: type[Exception]) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise bug("a bug in a custom transport")

    # Not an outage to retry or report as one: the caller's own bug, as raised.
    with client(broken) as auth, pytest.raises(bug, match="custom transport"):
        auth.list_tokens()


def test_a_fetcher_interrupted_leaves_no_waiter_hanging() -> None:
    arrived, release = threading.Event(), threading.Event()

    def interrupted(request: httpx.Request) -> httpx.Response:
        arrived.set()
        assert release.wait(10)
        raise KeyboardInterrupt  # as Ctrl-C does, in the thread that fetches

    token = generate_token()
    with client(interrupted) as auth:
        fetcher_saw: list[BaseException] = []
        waiter_saw: list[BaseException] = []

        def validate(saw: list[BaseException]) -> None:
            try:
                auth.validate(token)
            except BaseException as exc:  # what each caller got is the point
                saw.append(exc)

        fetcher = threading.Thread(target=validate, args=(fetcher_saw,))
        fetcher.start()
        assert arrived.wait(10)
        waiter = threading.Thread(target=validate, args=(waiter_saw,))
        waiter.start()
        wait_for(lambda: auth.cache_stats().coalesced == 1)  # joined the fetcher's flight
        release.set()
        fetcher.join(10)
        waiter.join(10)
    assert [type(e) for e in fetcher_saw] == [KeyboardInterrupt]
    assert [type(e) for e in waiter_saw] == [AuthServiceUnavailable]
    assert str(waiter_saw[0]) == "the validation request was interrupted; retry"
