"""base_url and admin_token come from arguments or the environment; bad options are refused."""

from __future__ import annotations

import inspect

import httpx
import pytest
import respx

from amplify_auth_client import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_CACHE_TTL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_NEGATIVE_CACHE_TTL,
    DEFAULT_RETRY_DEADLINE,
    DEFAULT_TIMEOUT,
    AsyncAuthClient,
    AuthClient,
    AuthConfigError,
    AuthError,
)
from tests.client.support import BASE_URL, valid


def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_SERVICE_URL", "http://from-env:8000")
    assert AuthClient().base_url == "http://from-env:8000"
    assert AuthClient("http://explicit:9000").base_url == "http://explicit:9000"


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_no_base_url_says_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch, empty: str | None
) -> None:
    if empty is not None:
        monkeypatch.setenv("AUTH_SERVICE_URL", empty)
    with pytest.raises(AuthConfigError, match="AUTH_SERVICE_URL") as raised:
        AuthClient()
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, AuthError)


def test_base_url_needs_a_scheme() -> None:
    with pytest.raises(AuthConfigError, match="http:// or https://"):
        AuthClient("auth:8000")


def test_requests_go_under_the_base_path(token: str) -> None:
    with respx.mock(base_url="http://gateway/auth-service/") as router:
        route = router.post("/auth/validate").mock(return_value=valid())
        AuthClient("http://gateway/auth-service").validate(token)
    assert route.calls.last.request.url == "http://gateway/auth-service/auth/validate"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("timeout", 0),
        ("timeout", -1),
        ("timeout", float("nan")),
        ("cache_size", -1),
        ("cache_size", 1.5),
        ("cache_size", True),
        ("cache_ttl", -0.1),
        ("negative_cache_ttl", -1),
        ("max_retries", -1),
        ("retry_deadline", 0),
        ("stale_if_error", -5),
        ("cache_ttl", "30"),
    ],
)
def test_bad_options_are_refused_at_construction(option: str, value: object) -> None:
    with pytest.raises(AuthConfigError, match=option):
        AuthClient(BASE_URL, **{option: value})  # type: ignore[arg-type]


def test_an_httpx_timeout_is_taken_as_is(api: respx.MockRouter, token: str) -> None:
    route = api.post("/auth/validate").mock(return_value=valid())
    AuthClient(BASE_URL, timeout=httpx.Timeout(1.0, connect=0.25)).validate(token)
    assert route.calls.last.request.extensions["timeout"]["connect"] == 0.25


def test_the_defaults_are_the_documented_constants() -> None:
    assert (DEFAULT_TIMEOUT, DEFAULT_CACHE_SIZE, DEFAULT_CACHE_TTL) == (5.0, 10_000, 30.0)
    assert (DEFAULT_NEGATIVE_CACHE_TTL, DEFAULT_MAX_RETRIES, DEFAULT_RETRY_DEADLINE) == (
        5.0,
        3,
        10.0,
    )
    assert DEFAULT_NEGATIVE_CACHE_TTL < DEFAULT_CACHE_TTL
    stats = AuthClient(BASE_URL).cache_stats()
    assert stats.maxsize == DEFAULT_CACHE_SIZE


def test_both_clients_take_the_same_arguments() -> None:
    sync = inspect.signature(AuthClient)
    asynchronous = inspect.signature(AsyncAuthClient)
    assert list(sync.parameters) == list(asynchronous.parameters)
    for name, parameter in sync.parameters.items():
        assert parameter.default == asynchronous.parameters[name].default
        assert parameter.kind == asynchronous.parameters[name].kind
    assert [p.kind for p in sync.parameters.values()][1:] == [inspect.Parameter.KEYWORD_ONLY] * (
        len(sync.parameters) - 1
    )


@pytest.mark.parametrize("option", ["timeout", "cache_ttl", "negative_cache_ttl", "retry_deadline"])
@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_infinite_seconds_are_refused(option: str, value: float) -> None:
    # An endless TTL would serve a revoked token forever.
    with pytest.raises(AuthConfigError, match=f"{option} must be a finite number"):
        AuthClient(BASE_URL, **{option: value})  # type: ignore[arg-type]


def test_infinite_stale_if_error_is_refused() -> None:
    with pytest.raises(AuthConfigError, match="stale_if_error must be a finite number"):
        AuthClient(BASE_URL, stale_if_error=float("inf"))


def test_an_httpx_timeout_is_checked_too() -> None:
    with pytest.raises(AuthConfigError, match=r"timeout \(read\) must be a finite number"):
        AuthClient(BASE_URL, timeout=httpx.Timeout(5.0, read=float("inf")))
    # None is httpx's "no limit" for a phase: allowed.
    AuthClient(BASE_URL, timeout=httpx.Timeout(5.0, pool=None))


@pytest.mark.parametrize(
    "admin_token", ["hunter2-password\n", " hunter2", "hunter 2", "hunter2\t", "hünter2", "h\x00"]
)
def test_an_admin_token_that_cannot_be_a_header_is_refused_unechoed(admin_token: str) -> None:
    # h11 would refuse it later, with the whole value in its message.
    with pytest.raises(AuthConfigError, match="admin_token must be printable ASCII") as raised:
        AuthClient(BASE_URL, admin_token=admin_token)
    assert admin_token.strip() not in str(raised.value)
    assert "hunter" not in str(raised.value)


def test_an_admin_token_from_the_environment_is_checked_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTH_ADMIN_TOKEN", "two words")
    with pytest.raises(AuthConfigError, match="admin_token"):
        AuthClient(BASE_URL)
