"""The SDK takes a positive validation answer only when it is the server's whole answer:
anything less is AuthServiceUnavailable, never valid, never cached."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from amplify_auth_client import AsyncAuthClient, AuthClient, AuthServiceUnavailable
from tests.client.support import BASE_URL, FakeClock, iso, valid_body


def _without(field: str) -> dict[str, Any]:
    body = valid_body(["admin"])
    del body[field]
    return body


def _with(**fields: Any) -> dict[str, Any]:
    return {**valid_body(["admin"]), **fields}


# Each one was taken as valid (and cached) before: a stub, a mock or a proxy
# answering like this would have let every token in.
INCOMPLETE: dict[str, Any] = {
    "only valid": {"valid": True},
    "valid and scopes": {"valid": True, "scopes": ["admin"]},
    **{f"no {field}": _without(field) for field in valid_body() if field != "valid"},
    "reason revoked": _with(reason="revoked"),
    "reason unknown": _with(reason="unknown"),
    "token_id null": _with(token_id=None),
    "token_id not an id": _with(token_id="admin"),
    "name null": _with(name=None),
    "missing scopes": _with(missing_scopes=["admin"]),
    "missing scopes not a list": _with(missing_scopes="none"),
    "scopes null": _with(scopes=None),
    "a scope not a string": _with(scopes=["admin", 1]),
    "expires_at not a time": _with(expires_at="soon"),
    "expires_at without a zone": _with(expires_at="2026-06-01T00:00:00"),
    "expires_at a number": _with(expires_at=1_900_000_000),
    "owner not an owner": _with(owner="Not An Owner"),
    "owner a number": _with(owner=5),
}


@pytest.mark.parametrize("body", INCOMPLETE.values(), ids=INCOMPLETE.keys())
def test_an_incomplete_positive_answer_is_unavailable_and_not_cached(
    api: respx.MockRouter, token: str, body: dict[str, Any]
) -> None:
    route = api.post("/auth/validate").mock(return_value=httpx.Response(200, json=body))
    with AuthClient(BASE_URL, subscribe_revocations=False) as client:
        for attempt in (1, 2):
            with pytest.raises(AuthServiceUnavailable, match="not with the auth API's JSON"):
                client.validate(token, required_scopes=["admin"])
            # Asked again: nothing was cached.
            assert route.call_count == attempt
        assert client.cache_stats().size == 0


def test_a_positive_answer_for_an_expired_token_is_unavailable(
    api: respx.MockRouter, token: str, clock: FakeClock
) -> None:
    past = valid_body(["read"])
    past["expires_at"] = iso(clock.in_(-1))
    route = api.post("/auth/validate").mock(return_value=httpx.Response(200, json=past))
    with AuthClient(BASE_URL, subscribe_revocations=False) as client:
        with pytest.raises(AuthServiceUnavailable, match="expired"):
            client.validate(token)
        with pytest.raises(AuthServiceUnavailable):
            client.validate(token)
        assert route.call_count == 2


def test_the_whole_answer_is_taken_and_cached(
    api: respx.MockRouter, token: str, clock: FakeClock
) -> None:
    body = valid_body(["admin"])
    body["expires_at"] = iso(clock.in_(60))
    route = api.post("/auth/validate").mock(return_value=httpx.Response(200, json=body))
    with AuthClient(BASE_URL, subscribe_revocations=False) as client:
        assert client.validate(token, ["admin"]).valid
        assert client.validate(token, ["admin"]).cached
        assert route.call_count == 1


def test_the_owner_reaches_the_result_and_the_caller_and_its_absence_is_none(
    api: respx.MockRouter, token: str
) -> None:
    route = api.post("/auth/validate").mock(
        return_value=httpx.Response(200, json=_with(owner="payments"))
    )
    with AuthClient(BASE_URL, subscribe_revocations=False) as client:
        fresh, hit = client.validate(token), client.validate(token)
        assert fresh.owner == hit.owner == "payments"
        assert hit.cached
        assert hit.caller is not None
        assert hit.caller.owner == "payments"
        route.mock(return_value=httpx.Response(200, json=valid_body(["admin"])))
        older = client.validate(token, max_staleness=0)
        # A server older than owners says nothing of them: no owner.
        assert older.valid
        assert older.owner is None


def test_fields_a_newer_server_adds_are_ignored(api: respx.MockRouter, token: str) -> None:
    body = {**valid_body(["read"]), "plan": "gold"}
    api.post("/auth/validate").mock(return_value=httpx.Response(200, json=body))
    with AuthClient(BASE_URL, subscribe_revocations=False) as client:
        assert client.validate(token, ["read"]).valid


@pytest.mark.anyio
async def test_the_async_client_is_as_strict(api: respx.MockRouter, token: str) -> None:
    route = api.post("/auth/validate").mock(
        return_value=httpx.Response(200, json={"valid": True, "scopes": ["admin"]})
    )
    async with AsyncAuthClient(BASE_URL, subscribe_revocations=False) as client:
        for _ in range(2):
            with pytest.raises(AuthServiceUnavailable):
                await client.validate(token, ["admin"])
        assert route.call_count == 2
        assert client.cache_stats().size == 0
