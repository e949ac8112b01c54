"""rotate_token: what it sends, how it reads the answer, that it retries with one key;
the same against FakeAuthServer and a real server, where a subscribed SDK stops
serving the old token once its deadline has passed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from amplify_auth_client import (
    AsyncAuthClient,
    AuthClient,
    AuthServiceUnavailable,
    CreatedToken,
    InvalidRequest,
    RotatedToken,
    TokenAlreadyCreated,
    TokenConflict,
    TokenNotFound,
    generate_token,
)
from amplify_auth_client.testing import FakeAuthServer
from tests.client.support import BASE_URL, CREATED_AT, OTHER_ID, TOKEN_ID, error, record, valid_body
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.waiting import wait_for

ADMIN = generate_token()
RAW = generate_token()


def rotated_body(**changes: Any) -> dict[str, Any]:
    previous = {
        **record(OTHER_ID, expires_at="2026-01-02T12:00:00Z"),
        "replaced_by": TOKEN_ID,
        "rotated_from": None,
        "finish_when_idle_seconds": 900,
    }
    return {
        "token": RAW,
        "token_id": TOKEN_ID,
        "name": "billing",
        "scopes": ["invoices:read"],
        "created_at": CREATED_AT,
        "expires_at": "2026-01-31T12:00:00Z",
        "description": "billing service",
        "metadata": {"team": "payments"},
        "owner": None,
        "rotated_from": OTHER_ID,
        "previous": previous,
        **changes,
    }


@pytest.fixture
def client() -> Iterator[AuthClient]:
    with AuthClient(BASE_URL, admin_token=ADMIN, subscribe_revocations=False) as client:
        yield client


# -- unit: what is sent, what is read ---------------------------------------------


def test_rotate_sends_the_grace_and_reads_both_tokens(
    api: respx.MockRouter, client: AuthClient
) -> None:
    route = api.post(f"/auth/tokens/{OTHER_ID}/rotate").mock(
        return_value=httpx.Response(201, json=rotated_body())
    )
    rotated = client.rotate_token(OTHER_ID, grace_seconds=3600, finish_when_idle_seconds=900)
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {ADMIN}"
    assert json.loads(request.content) == {"grace_seconds": 3600, "finish_when_idle_seconds": 900}
    assert isinstance(rotated, RotatedToken)
    assert isinstance(rotated, CreatedToken)
    assert (rotated.token, rotated.token_id, rotated.rotated_from) == (RAW, TOKEN_ID, OTHER_ID)
    assert rotated.previous.replaced_by == TOKEN_ID
    assert rotated.previous.finish_when_idle_seconds == 900
    assert rotated.previous.expires_at == datetime(2026, 1, 2, 12, tzinfo=UTC)
    assert RAW not in repr(rotated)


def test_the_default_grace_is_sent_and_idle_left_out(
    api: respx.MockRouter, client: AuthClient
) -> None:
    route = api.post(f"/auth/tokens/{OTHER_ID}/rotate").mock(
        return_value=httpx.Response(201, json=rotated_body())
    )
    client.rotate_token(OTHER_ID)
    assert json.loads(route.calls.last.request.content) == {"grace_seconds": 86400}


def test_a_rotation_is_repeated_with_the_same_key(
    api: respx.MockRouter, client: AuthClient
) -> None:
    route = api.post(f"/auth/tokens/{OTHER_ID}/rotate").mock(
        side_effect=[
            httpx.ReadTimeout("read timed out"),
            error(503, "unavailable", "retry shortly"),
            httpx.Response(201, json=rotated_body()),
        ]
    )
    assert client.rotate_token(OTHER_ID, grace_seconds=60).token_id == TOKEN_ID
    keys = {call.request.headers["Idempotency-Key"] for call in route.calls}
    assert len(route.calls) == 3
    assert len(keys) == 1
    route.mock(side_effect=None, return_value=httpx.Response(201, json=rotated_body()))
    client.rotate_token(OTHER_ID, grace_seconds=60, idempotency_key="roll-7")
    assert route.calls.last.request.headers["Idempotency-Key"] == "roll-7"


def test_a_replay_raises_token_already_created(api: respx.MockRouter, client: AuthClient) -> None:
    api.post(f"/auth/tokens/{OTHER_ID}/rotate").mock(
        return_value=httpx.Response(200, json=rotated_body(token=None))
    )
    with pytest.raises(TokenAlreadyCreated, match="rotated earlier") as raised:
        client.rotate_token(OTHER_ID, grace_seconds=60)
    assert raised.value.token_id == TOKEN_ID
    assert f"revoke {TOKEN_ID}" in str(raised.value)


@pytest.mark.parametrize(
    "bad",
    [
        {"rotated_from": TOKEN_ID},
        {"previous": {**record(OTHER_ID), "replaced_by": "nobody"}},
        {"previous": {**record(OTHER_ID), "finish_when_idle_seconds": "60"}},
        {"previous": None},
    ],
)
def test_an_answer_off_the_contract_is_unavailable(
    api: respx.MockRouter, client: AuthClient, bad: dict[str, Any]
) -> None:
    api.post(f"/auth/tokens/{OTHER_ID}/rotate").mock(
        return_value=httpx.Response(201, json=rotated_body(**bad))
    )
    with pytest.raises(AuthServiceUnavailable):
        client.rotate_token(OTHER_ID, grace_seconds=60)


def test_a_raw_token_is_refused_where_an_id_belongs(
    api: respx.MockRouter, client: AuthClient
) -> None:
    with pytest.raises(InvalidRequest, match="raw token"):
        client.rotate_token(RAW)
    assert len(api.calls) == 0


def test_a_409_is_a_conflict(api: respx.MockRouter, client: AuthClient) -> None:
    api.post(f"/auth/tokens/{OTHER_ID}/rotate").mock(
        return_value=error(409, "conflict", "already rotated")
    )
    with pytest.raises(TokenConflict, match="already rotated"):
        client.rotate_token(OTHER_ID)


def test_replaced_by_reaches_the_result_and_the_caller(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    route = api.post("/auth/validate").mock(
        return_value=httpx.Response(200, json={**valid_body(["read"]), "replaced_by": OTHER_ID})
    )
    fresh, hit = client.validate(token), client.validate(token)
    assert fresh.replaced_by == hit.replaced_by == OTHER_ID
    assert hit.caller is not None
    assert hit.caller.replaced_by == OTHER_ID
    # A server older than rotation says nothing of it: not replaced.
    route.mock(return_value=httpx.Response(200, json=valid_body(["read"])))
    older = client.validate(token, max_staleness=0)
    assert older.valid
    assert older.replaced_by is None


@pytest.mark.parametrize("replaced_by", ["someone", 5, ["tok_0123456789abcdef"]])
def test_a_replaced_by_that_is_no_id_is_unavailable(
    api: respx.MockRouter, client: AuthClient, token: str, replaced_by: object
) -> None:
    body = {**valid_body(["read"]), "replaced_by": replaced_by}
    api.post("/auth/validate").mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(AuthServiceUnavailable):
        client.validate(token)
    assert client.cache_stats().size == 0


@pytest.mark.anyio
async def test_the_async_client_rotates(api: respx.MockRouter) -> None:
    route = api.post(f"/auth/tokens/{OTHER_ID}/rotate").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json=rotated_body())]
    )
    async with AsyncAuthClient(BASE_URL, admin_token=ADMIN) as client:
        rotated = await client.rotate_token(OTHER_ID, grace_seconds=0)
    assert rotated.previous.token_id == OTHER_ID
    assert json.loads(route.calls.last.request.content) == {"grace_seconds": 0}
    first, second = (call.request.headers["Idempotency-Key"] for call in route.calls)
    assert first == second


# -- FakeAuthServer: the same semantics -------------------------------------------


def test_the_fake_rotates_as_the_server_does() -> None:
    now = [datetime.now(UTC)]
    fake = FakeAuthServer(now=lambda: now[0])
    old = fake.add_token("svc", ["read"], expires_at=now[0] + timedelta(days=3), owner="pay")
    with fake.client() as client:
        now[0] += timedelta(days=1)
        rotated = client.rotate_token(old.token_id, grace_seconds=60)
        assert rotated.expires_at == now[0] + timedelta(days=3)
        assert (rotated.name, rotated.scopes, rotated.owner) == ("svc", ("read",), "pay")
        assert rotated.previous.expires_at == now[0] + timedelta(seconds=60)
        answer = client.validate(old.token)
        assert (answer.valid, answer.replaced_by) == (True, rotated.token_id)
        assert client.get_token(rotated.token_id).rotated_from == old.token_id
        with pytest.raises(TokenConflict, match="already rotated"):
            client.rotate_token(old.token_id)
        assert [e.action for e in client.token_audit(old.token_id)] == ["rotate", "create"]
        now[0] += timedelta(seconds=60)
        assert client.validate(old.token, max_staleness=0).reason == "expired"
        at_once = client.rotate_token(rotated.token_id, grace_seconds=0)
        assert at_once.previous.status == "revoked"
        with pytest.raises(TokenNotFound):
            client.rotate_token("tok_zzzzzzzzzzzzzzzz")


# -- a real server: a subscribed SDK ----------------------------------------------


@pytest.fixture(scope="module")
def real(backend: Backend) -> Iterator[ServerProcess]:
    with running_server(backend) as process:
        yield process


@pytest.fixture
def subscribed(real: ServerProcess) -> Iterator[AuthClient]:
    """A client holding answers for ten minutes, whose subscription is live."""
    with AuthClient(
        real.base_url, admin_token=real.admin_token, cache_ttl=600, subscribe_revocations=True
    ) as client:
        client.validate(generate_token())  # the first request starts the subscription
        wait_for(lambda: client.cache_stats().subscription == "live", 30)
        yield client


def _cached_elsewhere(real: ServerProcess, subscribed: AuthClient) -> tuple[str, str]:
    """A token minted through another client, held as valid in ``subscribed``'s cache."""
    with AuthClient(real.base_url, admin_token=real.admin_token) as other:
        made = other.create_token("rolled", ["read"], ttl_days=1)
    assert subscribed.validate(made.token).valid
    assert subscribed.validate(made.token).cached
    return made.token, made.token_id


@pytest.mark.timeout(60)
def test_a_subscribed_sdk_refuses_the_old_token_after_its_deadline(
    real: ServerProcess, subscribed: AuthClient
) -> None:
    token, token_id = _cached_elsewhere(real, subscribed)
    events = subscribed.cache_stats().events
    # Rotated by another process: only the event can tell this client.
    with AuthClient(real.base_url, admin_token=real.admin_token) as other:
        rotated = other.rotate_token(token_id, grace_seconds=2)
    assert rotated.previous.expires_at is not None
    deadline = rotated.previous.expires_at.timestamp()
    wait_for(lambda: subscribed.cache_stats().events > events, 15)
    in_grace = subscribed.validate(token)
    assert in_grace.valid
    assert in_grace.replaced_by == rotated.token_id
    assert in_grace.expires_at == rotated.previous.expires_at
    wait_for(lambda: not subscribed.validate(token).valid, 15)
    assert time.time() >= deadline
    assert subscribed.validate(token).reason == "expired"
    assert subscribed.validate(rotated.token).valid


@pytest.mark.timeout(60)
def test_a_subscribed_sdk_refuses_at_once_after_a_grace_of_zero(
    real: ServerProcess, subscribed: AuthClient
) -> None:
    token, token_id = _cached_elsewhere(real, subscribed)
    events = subscribed.cache_stats().events
    with AuthClient(real.base_url, admin_token=real.admin_token) as other:
        other.rotate_token(token_id, grace_seconds=0)
    wait_for(lambda: subscribed.cache_stats().events > events, 15)
    answer = subscribed.validate(token)
    assert (answer.valid, answer.reason, answer.cached) == (False, "revoked", False)
