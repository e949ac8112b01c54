"""Validation answers are cached by token hash, reused for any scopes, and never past their time."""

from __future__ import annotations

import json
from typing import Any, cast

import httpx
import pytest
import respx

from amplify_auth_client import (
    AuthClient,
    AuthServiceUnavailable,
    Reason,
    generate_token,
    hash_token,
)
from tests.client.support import BASE_URL, TOKEN_ID, FakeClock, invalid, valid


@pytest.fixture
def client() -> AuthClient:
    return AuthClient(BASE_URL, cache_ttl=30, negative_cache_ttl=5)


def test_hundred_sequential_validations_make_one_request(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    route = api.post("/auth/validate").mock(return_value=valid())
    results = [client.validate(token, ["read"]) for _ in range(100)]
    assert route.call_count == 1
    assert all(r.valid for r in results)
    assert not results[0].cached
    assert all(r.cached for r in results[1:])
    # A hit hands out one shared, frozen result rather than building one.
    assert results[1] is results[99]
    stats = client.cache_stats()
    assert (stats.hits, stats.misses, stats.requests, stats.size) == (99, 1, 1, 1)


def test_the_server_is_asked_without_scopes_and_without_admin_token(
    api: respx.MockRouter, token: str
) -> None:
    route = api.post("/auth/validate").mock(return_value=valid())
    AuthClient(BASE_URL, admin_token=generate_token()).validate(token, ["read", "write"])
    request = route.calls.last.request
    assert json.loads(request.content) == {"token": token, "required_scopes": []}
    assert "authorization" not in request.headers


def test_one_entry_answers_every_scope_combination(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    route = api.post("/auth/validate").mock(return_value=valid(["read", "write"]))
    assert client.validate(token).valid
    assert client.validate(token, ["read"]).valid
    assert client.validate(token, ("write", "read")).valid
    assert client.validate(token, frozenset({"write"})).valid
    denied = client.validate(token, ["admin", "read", "export", "admin"])
    assert not denied.valid
    assert denied.reason == "insufficient_scope"
    # In the order asked, without repeats, as the server reports them.
    assert denied.missing_scopes == ("admin", "export")
    assert denied.scopes == ("read", "write")
    assert denied.token_id == TOKEN_ID
    assert not denied  # truthiness is validity
    assert route.call_count == 1


def test_insufficient_scope_on_the_first_call_still_caches_the_token(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    route = api.post("/auth/validate").mock(return_value=valid(["read"]))
    first = client.validate(token, ["write"])
    assert (first.valid, first.reason, first.missing_scopes) == (
        False,
        "insufficient_scope",
        ("write",),
    )
    assert client.validate(token, ["read"]).valid
    assert route.call_count == 1


def test_a_str_of_scopes_is_refused(client: AuthClient, token: str) -> None:
    # Iterating "read" would check the scopes "r", "e", "a", "d".
    with pytest.raises(TypeError, match=r"\['read'\]"):
        client.validate(token, "read")
    with pytest.raises(TypeError, match=r"\[b'read'\]"):
        client.validate(token, b"read")  # type: ignore[arg-type]


def test_none_for_scopes_is_refused_not_taken_for_none(client: AuthClient, token: str) -> None:
    with pytest.raises(TypeError, match=r"\(\) asks for none"):
        client.validate(token, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scope names are strings"):
        client.validate(token, (scope for scope in [None]))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "scopes",
    [
        lambda: (s for s in ["admin"]),
        lambda: iter(["read", "admin"]),
        lambda: {"admin": 1}.keys(),
        lambda: map(str, ["admin"]),
    ],
    ids=["generator", "iterator", "keys view", "map"],
)
def test_any_iterable_of_scopes_is_judged_whole_on_a_miss_and_a_hit(
    api: respx.MockRouter, client: AuthClient, token: str, scopes: Any
) -> None:
    # A generator was used up by the hit path's first look, then seemed empty: valid.
    route = api.post("/auth/validate").mock(return_value=valid(["read"]))
    miss = client.validate(token, scopes())
    hit = client.validate(token, scopes())
    for result in (miss, hit):
        assert (result.valid, result.reason, result.missing_scopes) == (
            False,
            "insufficient_scope",
            ("admin",),
        )
    assert hit.cached
    assert route.call_count == 1


def test_positive_answer_expires_after_cache_ttl(
    api: respx.MockRouter, client: AuthClient, token: str, clock: FakeClock
) -> None:
    route = api.post("/auth/validate").mock(return_value=valid())
    client.validate(token)
    clock.advance(29.9)
    assert client.validate(token).cached
    clock.advance(0.1)
    assert not client.validate(token).cached
    assert route.call_count == 2


def test_never_served_past_the_tokens_own_expiry(
    api: respx.MockRouter, client: AuthClient, token: str, clock: FakeClock
) -> None:
    route = api.post("/auth/validate")
    route.side_effect = [
        valid(expires_at=clock.in_(10)),
        invalid("expired", token_id=TOKEN_ID, name="billing"),
    ]
    assert client.validate(token).valid
    clock.advance(9.9)
    assert client.validate(token).valid
    clock.advance(0.1)  # the token's expires_at, well inside cache_ttl
    result = client.validate(token)
    assert (result.valid, result.reason, result.cached) == (False, "expired", False)
    assert route.call_count == 2


def test_expiry_follows_the_wall_clock(
    api: respx.MockRouter, client: AuthClient, token: str, clock: FakeClock
) -> None:
    # The server judges expiry by the wall clock; if it jumps forward, so do we.
    route = api.post("/auth/validate").mock(
        side_effect=[valid(expires_at=clock.in_(3600)), invalid("expired")]
    )
    client.validate(token)
    clock.wall += 3600
    assert client.validate(token).reason == "expired"
    assert route.call_count == 2


@pytest.mark.parametrize("reason", ["unknown", "revoked", "expired"])
def test_negative_answers_are_cached_for_the_shorter_ttl(
    api: respx.MockRouter, client: AuthClient, token: str, clock: FakeClock, reason: str
) -> None:
    route = api.post("/auth/validate").mock(return_value=invalid(reason))
    assert client.validate(token).reason == reason
    clock.advance(4.9)
    cached = client.validate(token, ["read"])
    assert (cached.valid, cached.reason, cached.cached) == (False, reason, True)
    assert cached.missing_scopes == ()
    clock.advance(0.1)  # negative_cache_ttl; a positive answer would live 25 s more
    assert not client.validate(token).cached
    assert route.call_count == 2


def test_positive_and_negative_entries_live_side_by_side(
    api: respx.MockRouter, client: AuthClient, clock: FakeClock
) -> None:
    good, bad = generate_token(), generate_token()

    def answer(request: httpx.Request) -> httpx.Response:
        return valid() if json.loads(request.content)["token"] == good else invalid("unknown")

    route = api.post("/auth/validate").mock(side_effect=answer)
    client.validate(good)
    client.validate(bad)
    clock.advance(6)
    assert client.validate(good).cached
    assert not client.validate(bad).cached
    assert route.call_count == 3


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "Bearer abc",
        "amp_live_" + "A" * 43,  # right shape, wrong checksum
        "amp_live_" + "A" * 500,
        # Random values, fixed ids: every xdist worker must collect the same tests.
        pytest.param(generate_token()[:-1] + "!", id="bad-character"),
        pytest.param(generate_token().replace("amp_live_", "amp_test_"), id="other-prefix"),
        "amp_live_\ud800" + "A" * 42,  # the right length, but no string a token can be
    ],
)
def test_malformed_tokens_are_answered_locally(
    api: respx.MockRouter, client: AuthClient, bad: str
) -> None:
    route = api.post("/auth/validate").mock(return_value=valid())
    for _ in range(3):
        result = client.validate(bad, ["read"])
        assert (result.valid, result.reason, result.cached) == (False, "malformed", False)
    assert route.call_count == 0
    stats = client.cache_stats()
    assert (stats.size, stats.hits, stats.misses) == (0, 0, 0)


def test_server_saying_malformed_is_not_cached(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    # Client and server disagreeing on the format: remember nothing.
    route = api.post("/auth/validate").mock(return_value=invalid("malformed"))
    assert client.validate(token).reason == "malformed"
    assert client.validate(token).reason == "malformed"
    assert route.call_count == 2


def test_entries_are_keyed_by_hash_not_by_token(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    api.post("/auth/validate").mock(return_value=valid())
    client.validate(token)
    entries = client._cache._entries
    assert entries is not None
    assert list(entries.keys()) == [hash_token(token)]


def test_cache_size_bounds_the_entries_least_recently_used_out(api: respx.MockRouter) -> None:
    route = api.post("/auth/validate").mock(return_value=valid())
    client = AuthClient(BASE_URL, cache_size=2)
    a, b, c = generate_token(), generate_token(), generate_token()
    client.validate(a)
    client.validate(b)
    client.validate(a)  # a is now the most recently used
    client.validate(c)  # evicts b
    assert client.cache_stats().size == 2
    assert client.validate(a).cached
    assert not client.validate(b).cached
    assert route.call_count == 4


def test_cache_size_zero_turns_the_cache_off(api: respx.MockRouter, token: str) -> None:
    route = api.post("/auth/validate").mock(return_value=valid())
    client = AuthClient(BASE_URL, cache_size=0)
    for _ in range(3):
        assert client.validate(token).valid
    assert route.call_count == 3
    assert client.cache_stats().size == 0


def test_clear_cache_forgets_every_answer(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    route = api.post("/auth/validate").mock(return_value=valid())
    client.validate(token)
    client.clear_cache()
    assert client.cache_stats().size == 0
    assert not client.validate(token).cached
    assert route.call_count == 2


def test_results_carry_what_the_server_said(
    api: respx.MockRouter, client: AuthClient, token: str, clock: FakeClock
) -> None:
    expires = clock.in_(86_400)
    api.post("/auth/validate").mock(return_value=valid(["read"], name="ci", expires_at=expires))
    result = client.validate(token)
    assert (result.token_id, result.name, result.scopes, result.reason) == (
        TOKEN_ID,
        "ci",
        ("read",),
        None,
    )
    assert result.expires_at == expires
    assert result.expires_at is not None
    assert result.expires_at.tzinfo is not None


@pytest.mark.parametrize(
    "body",
    [
        {"valid": "true", "scopes": [], "token_id": None, "name": None, "reason": None},
        {"valid": 1, "scopes": ["read"]},
        {"scopes": ["read"]},
        {"valid": True, "scopes": "read"},
        {"valid": True, "scopes": [], "expires_at": "next tuesday"},
        ["valid", True],
    ],
)
def test_a_body_off_contract_is_never_taken_as_valid(
    api: respx.MockRouter, client: AuthClient, token: str, body: object
) -> None:
    # "true" is truthy: reading it loosely would fail open.
    api.post("/auth/validate").mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(AuthServiceUnavailable, match="base_url"):
        client.validate(token)
    assert client.cache_stats().size == 0


def test_a_non_json_answer_is_unavailable(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    api.post("/auth/validate").mock(return_value=httpx.Response(200, text="<html>login</html>"))
    with pytest.raises(AuthServiceUnavailable) as raised:
        client.validate(token)
    assert raised.value.status_code == 200


def test_a_reason_this_client_does_not_know_is_passed_on_uncached(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    # A newer server may say more; we cannot tell how long that holds.
    route = api.post("/auth/validate").mock(return_value=invalid("suspended"))
    first = client.validate(token)
    assert (first.valid, first.reason) == (False, cast(Reason, "suspended"))
    assert not client.validate(token).cached
    assert route.call_count == 2


def test_a_negative_answer_we_cannot_read_whole_is_still_no_and_not_cached(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    # A newer server's reason object; read strictly, it was "unavailable", and
    # stale_if_error then served the old "yes".
    body = {"valid": False, "scopes": [], "reason": {"code": "revoked"}}
    route = api.post("/auth/validate").mock(return_value=httpx.Response(200, json=body))
    result = client.validate(token)
    assert (result.valid, result.reason, result.cached) == (False, None, False)
    assert not client.validate(token).cached
    assert route.call_count == 2


def test_a_readable_reason_survives_an_unreadable_field(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    body = {**invalid("revoked").json(), "expires_at": "next tuesday"}
    route = api.post("/auth/validate").mock(return_value=httpx.Response(200, json=body))
    assert client.validate(token).reason == "revoked"
    assert not client.validate(token).cached
    assert route.call_count == 2


def test_insufficient_scope_to_a_question_without_scopes_is_a_protocol_error(
    api: respx.MockRouter, client: AuthClient, token: str
) -> None:
    # It once became a positive answer holding the scopes the server listed.
    body = {**invalid("insufficient_scope").json(), "scopes": ["read", "admin"]}
    api.post("/auth/validate").mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(AuthServiceUnavailable, match="insufficient_scope") as raised:
        client.validate(token, ["admin"])
    assert raised.value.status_code == 200
    assert client.cache_stats().size == 0


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 409, 422, 500])
def test_any_other_answer_than_2xx_to_validate_fails_closed(
    api: respx.MockRouter, client: AuthClient, token: str, status: int
) -> None:
    # A 404 from a wrong base path once became TokenNotFound.
    api.post("/auth/validate").mock(return_value=httpx.Response(status, text="<h1>nope</h1>"))
    with pytest.raises(AuthServiceUnavailable) as raised:
        client.validate(token)
    assert raised.value.status_code == status
    assert f"{BASE_URL} answered validate with HTTP {status}" in str(raised.value)
    if status == 404:
        assert "check that base_url points at the auth service" in str(raised.value)


def test_a_hit_takes_no_lock(api: respx.MockRouter, client: AuthClient, token: str) -> None:
    # The hit path reads a plain dict: a writer holding the lock does not stall it.
    api.post("/auth/validate").mock(return_value=valid())
    client.validate(token)
    with client._cache._lock:
        assert client.validate(token).cached


def test_eviction_gives_a_used_entry_a_second_chance(api: respx.MockRouter) -> None:
    route = api.post("/auth/validate").mock(return_value=valid())
    client = AuthClient(BASE_URL, cache_size=3)
    a, b, c, d, e = (generate_token() for _ in range(5))
    for each in (a, b, c):
        client.validate(each)
    client.validate(b)  # a hit: b is flagged as used
    client.validate(d)  # a goes: the oldest, and unused
    client.validate(e)  # b is older than c but used: it moves to the back, c goes
    assert client.validate(b).cached
    assert not client.validate(a).cached
    assert route.call_count == 6
