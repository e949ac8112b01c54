"""FakeAuthServer lists, pages, filters audits and refuses bad input exactly as a
real server process does (each backend)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from amplify_auth_client.testing import FakeAuthServer
from tests.client.test_real_server import assert_alike, normalise
from tests.support.server import Backend, ServerProcess, running_server

Call = Callable[..., httpx.Response]


@pytest.fixture(scope="module")
def real(backend: Backend) -> Iterator[ServerProcess]:
    with running_server(backend) as process:
        yield process


def recorder(http: httpx.Client, seen: list[tuple[str, Any]]) -> Call:
    """A request that notes its step, status and normalised body in ``seen``."""

    def call(
        step: str, method: str, path: str, *, locations: bool = True, **kwargs: Any
    ) -> httpx.Response:
        response = http.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if not locations:
            # The real server lists each branch's errors of a two-shape body
            # (pydantic's union); the fake names the first fault only.
            body = {"error": body["error"]}
        seen.append((step, (response.status_code, normalise(body))))
        return response

    return call


def names(response: httpx.Response) -> list[str]:
    return [item["name"] for item in response.json()["items"]]


def two_pages(
    call: Call, path: str, params: dict[str, Any], admin: dict[str, str]
) -> tuple[httpx.Response, httpx.Response]:
    """A first page, and the one its cursor points at."""
    first = call(f"{path} page 1", "GET", path, params=params, headers=admin)
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    second = call(f"{path} page 2", "GET", path, params=params | {"cursor": cursor},
                  headers=admin)  # fmt: skip
    return first, second


def listing(call: Call, admin: dict[str, str]) -> None:
    """Filters, flags and cursors of GET /auth/tokens, good and bad."""
    create = {"ttl_days": 3}
    for name, scopes, ttl in [
        ("billing-a", ["read"], 3),
        ("billing-b", ["read", "write"], None),
        ("Orders", ["write"], 30),
    ]:
        body = {"name": name, "scopes": scopes} | create | {"ttl_days": ttl}
        created = call(f"create {name}", "POST", "/auth/tokens", json=body, headers=admin)
    revoked_id = created.json()["token_id"]
    call("revoke Orders", "POST", f"/auth/tokens/{revoked_id}/revoke", headers=admin)
    for step, params in [
        ("by name prefix, any case", {"name": "BILL"}),
        ("by scope", {"scope": "write"}),
        ("expiring within 5 days", {"expires_within_days": "5"}),
        ("revoked only", {"status": "revoked"}),
        ("expired only", {"status": "expired"}),
        ("status all", {"status": "all", "name": "orders"}),
        ("all=false", {"all": "false"}),
        ("all=yes with status all", {"all": "yes", "status": "all"}),
        ("bad status", {"status": "gone"}),
        ("all with a status", {"all": "true", "status": "revoked"}),
        ("all=maybe", {"all": "maybe"}),
        ("empty name", {"name": ""}),
        ("bad scope", {"scope": "no spaces"}),
        ("within too far", {"expires_within_days": "40000"}),
        ("malformed cursor", {"cursor": "!!"}),
        ("forged cursor", {"cursor": "abc"}),
    ]:
        call(f"list: {step}", "GET", "/auth/tokens", params=params, headers=admin)
    # One at a time through the matching tokens, newest first, with the cursor
    # each page gives; the cursor is bound to the filters that made it.
    first, second = two_pages(call, "/auth/tokens", {"limit": 1, "name": "billing"}, admin)
    cursor = first.json()["next_cursor"]
    assert names(first) + names(second) == ["billing-b", "billing-a"]
    assert second.json()["next_cursor"] is None
    call("page 2, other filters", "GET", "/auth/tokens",
         params={"limit": 1, "name": "orders", "cursor": cursor}, headers=admin)  # fmt: skip
    call("a listing cursor for the audit", "GET", "/auth/audit", params={"cursor": cursor},
         headers=admin)  # fmt: skip


def audit(call: Call, admin: dict[str, str]) -> None:
    """Filters and cursors of GET /auth/audit, good and bad."""
    before = call("before", "GET", "/auth/audit", params={"limit": 1}, headers=admin)
    since = before.json()["items"][0]["at"]
    for step, params in [
        ("by action", {"action": "revoke"}),
        ("by actor: system", {"actor": "system"}),
        ("by actor: unknown id", {"actor": "tok_zzzzzzzzzzzzzzzz"}),
        ("since the last entry", {"since": since, "action": "create"}),
        ("until the last entry", {"until": since, "action": "revoke"}),
        ("bad action", {"action": "Not-An-Action"}),
        ("bad actor", {"actor": "admin"}),
        ("since without a zone", {"since": "2026-01-01T00:00:00"}),
        ("since not a time", {"since": "yesterday"}),
    ]:
        call(f"audit: {step}", "GET", "/auth/audit", params=params, headers=admin)
    first, rest = two_pages(call, "/auth/audit", {"limit": 2, "action": "create"}, admin)
    pages = first.json()["items"] + rest.json()["items"]
    assert [e["action"] for e in pages] == ["create"] * 3
    assert len({e["id"] for e in pages}) == 3


def refusals(call: Call, admin: dict[str, str]) -> None:
    """Bodies each route refuses, and why."""
    for step, body in [
        ("token too long", {"token": "x" * 1025}),
        ("scopes not a list", {"token": "x", "required_scopes": "read"}),
        ("a scope not text", {"token": "x", "required_scopes": [1]}),
        ("a list for a body", ["x"]),
    ]:
        call(f"validate: {step}", "POST", "/auth/validate", json=body)
    for step, body in [
        ("metadata not a mapping", {"metadata": ["x"]}),
        ("too much metadata", {"metadata": {f"k{i}": "v" for i in range(21)}}),
    ]:
        call(f"create: {step}", "POST", "/auth/tokens",
             json={"name": "m", "scopes": ["read"]} | body, headers=admin)  # fmt: skip
    target = call("create target", "POST", "/auth/tokens",
                  json={"name": "target", "scopes": ["read"]}, headers=admin)  # fmt: skip
    extend = f"/auth/tokens/{target.json()['token_id']}/extend"
    call("extend: extra field", "POST", extend, json={"days": 1, "hours": 2}, headers=admin)
    call("extend: no days", "POST", extend, json={}, headers=admin)
    for step, body in [
        ("ids not a list", {"token_ids": "tok_zzzzzzzzzzzzzzzz"}),
        ("no ids", {"token_ids": []}),
        ("an id twice", {"token_ids": ["tok_zzzzzzzzzzzzzzzz"] * 2}),
        ("neither ids nor filter", {"dry_run": True}),
        ("a filter not a mapping", {"filter": "billing"}),
        ("an unknown filter", {"filter": {"team": "x"}}),
        ("an empty filter", {"filter": {}}),
        ("a bad name", {"filter": {"name": ""}}),
        ("a bad scope", {"filter": {"scope": "a b"}}),
        ("within out of range", {"filter": {"expires_within_days": -1}}),
        ("dry_run not a boolean", {"filter": {"name": "b"}, "dry_run": [True]}),
    ]:
        refused = call(f"bulk revoke: {step}", "POST", "/auth/tokens/revoke", json=body,
                       headers=admin, locations=False)  # fmt: skip
        assert refused.status_code == 422
    dry = call("bulk revoke: dry run", "POST", "/auth/tokens/revoke",
               json={"filter": {"name": "billing"}, "dry_run": True}, headers=admin)  # fmt: skip
    assert dry.json()["revoked_count"] == 2
    done = call("bulk revoke: by ids", "POST", "/auth/tokens/revoke",
                json={"token_ids": [target.json()["token_id"], "tok_zzzzzzzzzzzzzzzz"]},
                headers=admin)  # fmt: skip
    assert done.json()["not_found"] == ["tok_zzzzzzzzzzzzzzzz"]
    call("bulk revoke: again", "POST", "/auth/tokens/revoke",
         json={"token_ids": [target.json()["token_id"]]}, headers=admin)  # fmt: skip
    call("list: still billing", "GET", "/auth/tokens", params={"name": "billing"}, headers=admin)


def scenario(http: httpx.Client, admin_token: str) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []
    call, admin = recorder(http, seen), {"Authorization": f"Bearer {admin_token}"}
    listing(call, admin)
    audit(call, admin)
    refusals(call, admin)
    return seen


@pytest.mark.timeout(60)
def test_the_fake_lists_filters_and_refuses_as_the_real_server(real: ServerProcess) -> None:
    assert_alike(real, scenario)


def test_the_fake_says_how_many_tokens_it_holds_and_no_secret() -> None:
    fake = FakeAuthServer()
    token = fake.add_token("one", ["read"])
    # A repr lands in logs and assertion messages: a count, never a token.
    assert repr(fake) == "FakeAuthServer(tokens=2)"
    assert token.token not in repr(fake)
    assert fake.admin_token not in repr(fake)
