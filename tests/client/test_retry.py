"""Network errors and 502/503/504 are retried within bounds; 4xx and unsafe repeats are not."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from amplify_auth_client import (
    AsyncAuthClient,
    AuthClient,
    AuthServiceUnavailable,
    InvalidRequest,
    TokenAlreadyCreated,
    TokenNotFound,
    _async_client,
    _client,
    _retry,
)
from amplify_auth_client._retry import RetryPolicy
from amplify_auth_client.contract import is_idempotency_key
from amplify_auth_client.testing import is_testing, set_testing
from tests.client.support import BASE_URL, TOKEN_ID, error, record, valid

ADMIN = "amp_live_" + "A" * 43


@pytest.fixture
def client() -> AuthClient:
    return AuthClient(BASE_URL, admin_token=ADMIN)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected"),
        error(502, "bad_gateway", "upstream down"),
        error(503, "unavailable", "the token database is unreachable; retry shortly"),
        error(504, "gateway_timeout", "upstream slow"),
    ],
    ids=lambda f: type(f).__name__ if isinstance(f, Exception) else f"HTTP {f.status_code}",
)
def test_retry_then_success(
    api: respx.MockRouter, client: AuthClient, token: str, failure: httpx.Response | Exception
) -> None:
    route = api.post("/auth/validate").mock(side_effect=[failure, failure, valid()])
    assert client.validate(token).valid
    assert route.call_count == 3


def test_retries_exhausted_raise_unavailable_from_the_httpx_error(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    route = api.post("/auth/validate").mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(AuthServiceUnavailable, match="after 4 attempt") as raised:
        client.validate(token)
    assert route.call_count == 4  # the first attempt and DEFAULT_MAX_RETRIES = 3
    assert isinstance(raised.value.__cause__, httpx.ConnectError)
    assert raised.value.status_code is None
    assert BASE_URL in str(raised.value)
    assert client.cache_stats().errors == 1


def test_retries_exhausted_on_503_keep_the_status(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    route = api.post("/auth/validate").mock(return_value=error(503, "unavailable", "down"))
    with pytest.raises(AuthServiceUnavailable) as raised:
        client.validate(token)
    assert raised.value.status_code == 503
    assert route.call_count == 4


def test_other_5xx_are_unavailable_without_retry(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    route = api.post("/auth/validate").mock(return_value=error(500, "internal_error", "bug"))
    with pytest.raises(AuthServiceUnavailable) as raised:
        client.validate(token)
    assert raised.value.status_code == 500
    assert route.call_count == 1


@pytest.mark.parametrize(
    "failure",
    [
        httpx.LocalProtocolError("Illegal header value"),
        httpx.UnsupportedProtocol("Request URL has an unsupported protocol"),
    ],
    ids=lambda f: type(f).__name__,
)
def test_errors_of_this_side_are_not_retried(
    api: respx.MockRouter, client: AuthClient, token: str, failure: Exception
) -> None:
    # The next attempt would fail alike; h11's message may even hold a header value.
    route = api.post("/auth/validate").mock(side_effect=failure)
    with pytest.raises(AuthServiceUnavailable, match="could not be sent"):
        client.validate(token)
    assert route.call_count == 1


def test_max_retries_zero_makes_one_attempt(api: respx.MockRouter, token: str) -> None:
    route = api.post("/auth/validate").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(AuthServiceUnavailable):
        AuthClient(BASE_URL, max_retries=0).validate(token)
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("status", "code"), [(422, "invalid_request"), (413, "payload_too_large"), (404, "not_found")]
)
def test_4xx_is_never_retried(
    api: respx.MockRouter, client: AuthClient, token: str, status: int, code: str
) -> None:
    route = api.post("/auth/validate").mock(return_value=error(status, code, "no"))
    with pytest.raises(AuthServiceUnavailable) as raised:
        client.validate(token)
    assert raised.value.status_code == status
    assert route.call_count == 1


def test_management_4xx_is_never_retried(api: respx.MockRouter, client: AuthClient) -> None:
    route = api.get(f"/auth/tokens/{TOKEN_ID}").mock(return_value=error(404, "not_found", "no"))
    with pytest.raises(TokenNotFound):
        client.get_token(TOKEN_ID)
    assert route.call_count == 1


CREATED = {
    "token": "amp_live_" + "B" * 43,
    "token_id": TOKEN_ID,
    "name": "ci",
    "scopes": ["read"],
    "created_at": "2026-01-01T00:00:00Z",
    "expires_at": None,
    "description": None,
    "metadata": None,
}


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected"),
        error(502, "bad_gateway", "upstream down"),
        # A proxy that lost the connection, or a commit that failed late,
        # answers 503 after the server acted: the key makes the repeat safe.
        error(503, "unavailable", "too many pending changes; retry shortly"),
        error(504, "gateway_timeout", "upstream slow"),
        httpx.ConnectError("connection refused"),
        httpx.PoolTimeout("no free connection"),
    ],
    ids=lambda f: type(f).__name__ if isinstance(f, Exception) else f"HTTP {f.status_code}",
)
def test_create_is_repeated_with_the_same_idempotency_key(
    api: respx.MockRouter, client: AuthClient, failure: httpx.Response | Exception
) -> None:
    route = api.post("/auth/tokens").mock(side_effect=[failure, httpx.Response(201, json=CREATED)])
    assert client.create_token("ci", ["read"]).token_id == TOKEN_ID
    first, second = (call.request.headers["Idempotency-Key"] for call in route.calls)
    assert first == second
    assert is_idempotency_key(first)


def test_each_create_sends_a_fresh_key(api: respx.MockRouter, client: AuthClient) -> None:
    route = api.post("/auth/tokens").mock(return_value=httpx.Response(201, json=CREATED))
    client.create_token("ci", ["read"])
    client.create_token("ci", ["read"])
    first, second = (call.request.headers["Idempotency-Key"] for call in route.calls)
    assert first != second


def test_a_callers_key_is_sent_as_given(api: respx.MockRouter, client: AuthClient) -> None:
    route = api.post("/auth/tokens").mock(return_value=httpx.Response(201, json=CREATED))
    client.create_token("ci", ["read"], idempotency_key="deploy-42/ci")
    assert route.calls.last.request.headers["Idempotency-Key"] == "deploy-42/ci"


@pytest.mark.parametrize("key", ["", "two words", "k" * 256, "caf\u00e9"])
def test_a_bad_key_is_refused_before_sending(
    api: respx.MockRouter, client: AuthClient, key: str
) -> None:
    route = api.post("/auth/tokens").mock(return_value=httpx.Response(201, json=CREATED))
    with pytest.raises(InvalidRequest, match="visible ASCII") as refused:
        client.create_token("ci", ["read"], idempotency_key=key)
    assert refused.value.status_code is None
    assert route.call_count == 0
    if key:
        assert key not in str(refused.value)


def test_a_replay_raises_with_the_earlier_tokens_id(
    api: respx.MockRouter, client: AuthClient
) -> None:
    # The first answer was lost; the repeat is answered from the first create.
    replay = httpx.Response(
        200, json={**CREATED, "token": None}, headers={"Idempotent-Replayed": "true"}
    )
    api.post("/auth/tokens").mock(side_effect=[httpx.ReadTimeout("slow"), replay])
    with pytest.raises(TokenAlreadyCreated) as replayed:
        client.create_token("ci", ["read"])
    assert replayed.value.token_id == TOKEN_ID
    assert f"revoke {TOKEN_ID}" in str(replayed.value)


def test_extend_is_not_repeated_after_a_timeout(api: respx.MockRouter, client: AuthClient) -> None:
    route = api.post(f"/auth/tokens/{TOKEN_ID}/extend").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json=record())]
    )
    with pytest.raises(AuthServiceUnavailable):
        client.extend_token(TOKEN_ID, 30)
    assert route.call_count == 1


def test_revoke_is_idempotent_so_it_is_repeated(api: respx.MockRouter, client: AuthClient) -> None:
    route = api.post(f"/auth/tokens/{TOKEN_ID}/revoke").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json=record(status="revoked"))]
    )
    assert client.revoke_token(TOKEN_ID).status == "revoked"
    assert route.call_count == 2


def test_the_same_request_is_resent(api: respx.MockRouter, client: AuthClient, token: str) -> None:
    route = api.post("/auth/validate").mock(side_effect=[error(503, "unavailable", "x"), valid()])
    client.validate(token)
    first, second = (json.loads(call.request.content) for call in route.calls)
    assert first == second == {"token": token, "required_scopes": []}


def test_waits_grow_with_full_jitter_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    set_testing(False)  # restored by the autouse fixture
    caps: list[float] = []

    def highest(low: float, high: float) -> float:
        caps.append(high)
        return high

    monkeypatch.setattr(_retry, "uniform", highest)
    attempts = RetryPolicy(max_retries=8, deadline=1000).start(idempotent=True)
    waits = [attempts.retry_after_error(httpx.ConnectError("x")) for _ in range(9)]
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0, None]
    assert caps == waits[:-1]


def test_the_draw_is_from_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    set_testing(False)
    monkeypatch.setattr(_retry, "uniform", lambda low, high: low)
    attempts = RetryPolicy(max_retries=3, deadline=1000).start(idempotent=True)
    assert attempts.retry_after_error(httpx.ConnectError("x")) == 0.0


def test_the_deadline_stops_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(_retry, "monotonic", lambda: now[0])
    attempts = RetryPolicy(max_retries=10, deadline=5.0).start(idempotent=True)
    now[0] = 4.9
    assert attempts.retry_after_error(httpx.ReadTimeout("slow")) is not None
    now[0] = 5.0  # each attempt timed out slowly: the budget is spent
    assert attempts.retry_after_error(httpx.ReadTimeout("slow")) is None


def test_the_deadline_bounds_a_client_call(
    api: respx.MockRouter, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    monkeypatch.setattr(_retry, "monotonic", lambda: now[0])

    def slow_timeout(request: httpx.Request) -> httpx.Response:
        now[0] += 4.0  # every attempt times out after 4 s
        raise httpx.ReadTimeout("slow", request=request)

    route = api.post("/auth/validate").mock(side_effect=slow_timeout)
    client = AuthClient(BASE_URL, max_retries=10, retry_deadline=10.0)
    with pytest.raises(AuthServiceUnavailable, match="after 3 attempt"):
        client.validate(token)
    assert route.call_count == 3  # at 4 s and 8 s a retry fits; at 12 s none does


def test_an_attempt_never_runs_past_the_deadline(
    api: respx.MockRouter, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An attempt starting at 9.9 s once ran its whole 5 s timeout.
    now = [0.0]
    monkeypatch.setattr(_retry, "monotonic", lambda: now[0])
    timeouts: list[dict[str, float]] = []

    def slow_timeout(request: httpx.Request) -> httpx.Response:
        timeouts.append(dict(request.extensions["timeout"]))
        now[0] += 4.95
        raise httpx.ReadTimeout("slow", request=request)

    api.post("/auth/validate").mock(side_effect=slow_timeout)
    timeout = httpx.Timeout(5.0, connect=1.0, pool=None)
    client = AuthClient(BASE_URL, timeout=timeout, max_retries=5, retry_deadline=10.0)
    with pytest.raises(AuthServiceUnavailable, match="after 3 attempt"):
        client.validate(token)
    assert timeouts[0] == {"connect": 1.0, "read": 5.0, "write": 5.0, "pool": 10.0}
    assert timeouts[1] == {"connect": 1.0, "read": 5.0, "write": 5.0, "pool": pytest.approx(5.05)}
    left = pytest.approx(0.1)
    assert timeouts[2] == {"connect": left, "read": left, "write": left, "pool": left}


def test_retry_after_lengthens_the_wait_up_to_the_cap(
    api: respx.MockRouter, client: AuthClient, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_testing(False)
    slept: list[float] = []
    monkeypatch.setattr(_client, "sleep", slept.append)
    busy = httpx.Response(503, headers={"Retry-After": "1"}, json={"error": "unavailable"})
    very_busy = httpx.Response(503, headers={"Retry-After": "120"}, json={"error": "unavailable"})
    api.post("/auth/validate").mock(side_effect=[busy, very_busy, valid()])
    client.validate(token)
    assert len(slept) == 2
    assert 1.0 <= slept[0] <= 2.0
    assert slept[1] == 2.0


def test_without_testing_mode_the_client_really_waits(
    api: respx.MockRouter, client: AuthClient, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_testing(False)
    slept: list[float] = []
    monkeypatch.setattr(_client, "sleep", slept.append)
    monkeypatch.setattr(_retry, "uniform", lambda low, high: high)
    api.post("/auth/validate").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(AuthServiceUnavailable):
        client.validate(token)
    assert slept == [0.1, 0.2, 0.4]


def test_testing_mode_skips_the_waits_but_not_the_attempts(
    api: respx.MockRouter, client: AuthClient, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(_client, "sleep", slept.append)
    route = api.post("/auth/validate").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(AuthServiceUnavailable):
        client.validate(token)
    assert route.call_count == 4
    assert slept == []


def test_set_testing_restores_as_a_context_manager() -> None:
    assert is_testing()  # the autouse fixture
    with set_testing(False):
        assert not is_testing()
        with set_testing(True):
            assert is_testing()
        assert not is_testing()
    assert is_testing()


@pytest.mark.anyio
async def test_async_retry_then_success_and_real_waits(
    api: respx.MockRouter, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_testing(False)
    slept: list[float] = []

    async def record_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(_async_client, "sleep", record_sleep)
    monkeypatch.setattr(_retry, "uniform", lambda low, high: high)
    route = api.post("/auth/validate").mock(
        side_effect=[httpx.ConnectError("refused"), error(504, "gateway_timeout", "x"), valid()]
    )
    async with AsyncAuthClient(BASE_URL) as client:
        assert (await client.validate(token)).valid
    assert route.call_count == 3
    assert slept == [0.1, 0.2]


@pytest.mark.anyio
async def test_async_retries_exhausted_and_4xx_not_retried(
    api: respx.MockRouter, token: str
) -> None:
    route = api.post("/auth/validate").mock(side_effect=httpx.ReadTimeout("slow"))
    async with AsyncAuthClient(BASE_URL, max_retries=2) as client:
        with pytest.raises(AuthServiceUnavailable) as raised:
            await client.validate(token)
        assert isinstance(raised.value.__cause__, httpx.ReadTimeout)
        assert route.call_count == 3
        refused = api.get(f"/auth/tokens/{TOKEN_ID}").mock(
            return_value=error(422, "invalid_request", "no")
        )
    async with AsyncAuthClient(BASE_URL, admin_token=ADMIN) as admin:
        with pytest.raises(InvalidRequest):
            await admin.get_token(TOKEN_ID)
    assert refused.call_count == 1
