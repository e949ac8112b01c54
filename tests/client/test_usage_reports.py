"""Cache hits are reported to the server by hash, each once; misses never (the server
counted them); a failed report is retried once, then dropped, and the next one arrives."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from amplify_auth_client import AsyncAuthClient, AuthClient, AuthConfigError, hash_token
from amplify_auth_client.contract import MAX_USAGE_HITS
from amplify_auth_client.testing import FakeAuthServer
from tests.client.support import BASE_URL, FakeClock, invalid, valid


@pytest.fixture
def client() -> AuthClient:
    return AuthClient(BASE_URL)


def _reported(route: respx.Route) -> list[dict[str, int]]:
    """Every report the route received, each as hash -> count."""
    return [
        {hit["token_hash"]: hit["count"] for hit in json.loads(call.request.content)["hits"]}
        for call in route.calls
    ]


def _report(client: AuthClient | AsyncAuthClient) -> int:
    reporter = client._reporter
    assert reporter is not None
    return reporter.report()


def test_hits_are_reported_once_and_misses_never(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    api.post("/auth/validate").mock(return_value=valid())
    usage = api.post("/auth/usage").mock(return_value=httpx.Response(204))
    client.validate(token)  # a miss: the server counted it
    for _ in range(4):
        client.validate(token, ["read"])
    client.validate(token, ["admin"])  # refused for its scopes: still a use
    assert _report(client) == 1
    assert _report(client) == 0  # nothing new: nothing sent
    client.validate(token)
    _report(client)
    assert _reported(usage) == [{hash_token(token): 5}, {hash_token(token): 1}]
    request = usage.calls.last.request
    assert "authorization" not in request.headers
    assert token not in request.content.decode()


def test_hits_on_negative_answers_are_no_use(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    api.post("/auth/validate").mock(return_value=invalid("revoked"))
    usage = api.post("/auth/usage").mock(return_value=httpx.Response(204))
    for _ in range(3):
        assert not client.validate(token)
    assert _report(client) == 0
    assert not usage.called


def test_hits_of_an_entry_that_left_the_cache_are_still_reported(
    api: respx.MockRouter, token: str
) -> None:
    client = AuthClient(BASE_URL, cache_size=1)
    other = "amp_live_" + token[9:]  # any second token
    api.post("/auth/validate").mock(return_value=valid())
    usage = api.post("/auth/usage").mock(return_value=httpx.Response(204))
    client.validate(token)
    client.validate(token)
    client.validate(token)
    client.clear_cache()  # the entry leaves: its two hits wait for the report
    _report(client)
    assert _reported(usage) == [{hash_token(token): 2}]
    del other


def test_a_failed_report_is_retried_once_then_dropped_and_the_next_arrives(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    api.post("/auth/validate").mock(return_value=valid())
    usage = api.post("/auth/usage").mock(
        side_effect=[
            httpx.ConnectError("down"),
            httpx.Response(503),
            httpx.Response(204),
        ]
    )
    client.validate(token)
    for _ in range(3):
        client.validate(token)
    assert _report(client) == 0  # both attempts failed: dropped, not piled up
    assert usage.call_count == 2
    client.validate(token)
    assert _report(client) == 1
    assert _reported(usage)[-1] == {hash_token(token): 1}
    assert client._reporter is not None
    assert client._reporter.dropped == 1


def test_a_large_harvest_is_split_into_requests_the_server_takes(
    api: respx.MockRouter, client: AuthClient
) -> None:
    from amplify_auth_client import generate_token

    api.post("/auth/validate").mock(return_value=valid())
    usage = api.post("/auth/usage").mock(return_value=httpx.Response(204))
    tokens = [generate_token() for _ in range(MAX_USAGE_HITS + 7)]
    for token in tokens:
        client.validate(token)
        client.validate(token)
    assert _report(client) == len(tokens)
    sizes = [len(report) for report in _reported(usage)]
    assert sizes == [MAX_USAGE_HITS, 7]


def test_close_sends_a_last_report(api: respx.MockRouter, token: str) -> None:
    api.post("/auth/validate").mock(return_value=valid())
    usage = api.post("/auth/usage").mock(return_value=httpx.Response(204))
    with AuthClient(BASE_URL) as client:
        client.validate(token)
        client.validate(token)
    assert _reported(usage) == [{hash_token(token): 1}]


def test_report_usage_false_sends_nothing(api: respx.MockRouter, token: str) -> None:
    api.post("/auth/validate").mock(return_value=valid())
    usage = api.post("/auth/usage").mock(return_value=httpx.Response(204))
    with AuthClient(BASE_URL, report_usage=False) as client:
        client.validate(token)
        client.validate(token)
        assert client._reporter is None
    assert not usage.called


def test_a_server_without_the_endpoint_is_not_asked_again(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    api.post("/auth/validate").mock(return_value=valid())
    usage = api.post("/auth/usage").mock(return_value=httpx.Response(404))
    client.validate(token)
    client.validate(token)
    _report(client)
    client.validate(token)
    _report(client)
    assert usage.call_count == 1


def test_a_forked_child_reports_only_its_own_hits(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    api.post("/auth/validate").mock(return_value=valid())
    usage = api.post("/auth/usage").mock(return_value=httpx.Response(204))
    client.validate(token)
    client.validate(token)
    client._after_fork()  # what os.register_at_fork runs in the child
    client.validate(token)
    _report(client)
    assert _reported(usage) == [{hash_token(token): 1}]


def test_the_reporter_thread_reports_on_its_interval(
    api: respx.MockRouter, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amplify_auth_client import _base
    from tests.support.waiting import wait_for

    # A thread, as outside tests (set_testing turns it off).
    monkeypatch.setattr(_base, "is_testing", lambda: False)
    api.post("/auth/validate").mock(return_value=valid())
    usage = api.post("/auth/usage").mock(return_value=httpx.Response(204))
    client = AuthClient(BASE_URL, usage_report_interval=0.05, subscribe_revocations=False)
    try:
        client.validate(token)  # the first miss starts the thread
        client.validate(token)
        wait_for(lambda: usage.called)
        assert _reported(usage)[0] == {hash_token(token): 1}
    finally:
        client.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"report_usage": "yes"}, "report_usage must be True or False"),
        ({"usage_report_interval": 0}, "usage_report_interval must be more than zero"),
        ({"usage_report_interval": float("inf")}, "finite"),
    ],
)
def test_bad_report_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(AuthConfigError, match=message):
        AuthClient(BASE_URL, **options)


@pytest.mark.anyio
async def test_the_async_client_reports_too(api: respx.MockRouter, token: str) -> None:
    api.post("/auth/validate").mock(return_value=valid())
    usage = api.post("/auth/usage").mock(return_value=httpx.Response(204))
    async with AsyncAuthClient(BASE_URL) as client:
        await client.validate(token)
        await client.validate(token)
        await client.validate(token)
    assert _reported(usage) == [{hash_token(token): 2}]


def test_the_fake_server_counts_reported_hits(clock: FakeClock) -> None:
    server = FakeAuthServer()
    made = server.add_token("svc", ["read"])
    with server.client() as client:
        for _ in range(3):
            assert client.validate(made.token)
    with server.client() as admin:
        info = admin.get_token(made.token_id)
    # One miss counted by the fake as it answered, two hits reported at close.
    assert sum(day.count for day in info.usage) == 3
    assert info.last_used_at is not None


def test_callers_who_joined_a_flight_are_uses_the_server_never_saw() -> None:
    from concurrent.futures import Future

    from amplify_auth_client._cache import Answer, ValidationCache

    cache: ValidationCache[Future[Any]] = ValidationCache(maxsize=10, ttl=30.0, negative_ttl=5.0)
    good, bad, changed = "a" * 64, "b" * 64, "c" * 64
    for key, answer in ((good, Answer(True, ("read",), "tok_1", "ci", None, None)),
                        (bad, Answer(False, (), "tok_2", "ci", None, "revoked")),
                        (changed, Answer(True, ("read",), "tok_3", "ci", None, None))):  # fmt: skip
        joined = [cache.join(key, (), Future) for _ in range(4)]
        assert [fetch for _, _, fetch in joined] == [True, False, False, False]  # type: ignore[misc]
        future, generation, _ = joined[0]  # type: ignore[misc]
        if key == changed:
            cache.evict(key)  # a change meanwhile: their answer may predate it
        cache.settle(key, future, generation, answer)
    # The server answered one request per token and counted it; the three
    # callers who waited on it are the SDK's to report, for a valid token only.
    assert cache.harvest() == {good: 3}
