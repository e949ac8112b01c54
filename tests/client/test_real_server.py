"""Against a real server process (each backend) the SDK works end to end, and
FakeAuthServer answers alike."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from amplify_auth_client import (
    AdminPermissionDenied,
    AdminTokenInvalid,
    AsyncAuthClient,
    AuthClient,
    TokenConflict,
    TokenNotFound,
    generate_token,
    hash_token,
)
from amplify_auth_client._parse import parse_answer
from amplify_auth_client.testing import FakeAuthServer
from tests.client.support import FakeClock
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.waiting import wait_for

_TOKEN = re.compile(r"amp_live_[A-Za-z0-9_-]{43}")
_ID = re.compile(r"tok_[a-z0-9]{16}")
# Only the API's own form, UTC with a Z: a server writing +00:00 (or a zone)
# leaves its times as they are, and so differs from the other.
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


@pytest.fixture(scope="module")
def real(backend: Backend) -> Iterator[ServerProcess]:
    # Usage flushed often, so that the usage scenario waits little for it.
    with running_server(backend, env={"USAGE_FLUSH_SECONDS": "0.2"}) as process:
        yield process


def normalise(value: Any, *, usage: bool = False) -> Any:
    """Strip what legitimately differs between two servers: secrets, ids, times, prose
    (and usage, unless ``usage``)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ("detail", "msg", "type", "id", "actor_name"):
                out[key] = "<text>" if item is not None else None
            elif key == "next_cursor":
                out[key] = "<cursor>" if item is not None else None
            elif key in ("last_used_at", "usage") and not usage:
                # Written by the real server's flush, a moment after the use:
                # compared by usage_scenario, which waits for it.
                out[key] = "<usage>"
            elif key == "day":
                out[key] = "<day>"
            else:
                out[key] = normalise(item, usage=usage)
        return out
    if isinstance(value, list):
        return [normalise(item, usage=usage) for item in value]
    if isinstance(value, str):
        if _TOKEN.fullmatch(value):
            return "<token>"
        if _ID.fullmatch(value):
            return "<id>"
        if _TIME.fullmatch(value):
            return "<time>"
    return value


Observe = Callable[..., dict[str, Any]]


def scenario(http: httpx.Client, admin_token: str) -> list[tuple[str, Any]]:
    """The same requests, in the same order, against one server; what came back."""
    seen: list[tuple[str, Any]] = []
    admin = {"Authorization": f"Bearer {admin_token}"}

    def call(step: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = http.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        headers = {
            name: response.headers.get(name) is not None
            for name in ("www-authenticate", "retry-after")
        }
        headers["no-store"] = response.headers.get("cache-control") == "no-store"
        headers["allow"] = response.headers.get("allow")
        headers["replayed"] = response.headers.get("idempotent-replayed")
        seen.append((step, (response.status_code, normalise(body), headers)))
        return response

    def validate(step: str, token: str, *scopes: str) -> None:
        call(step, "POST", "/auth/validate", json={"token": token, "required_scopes": scopes})

    validate("malformed", "amp_live_nope")
    validate("unknown", generate_token())
    json_type = {"Content-Type": "application/json"}
    call("validate: not json", "POST", "/auth/validate", content=b"{nope", headers=json_type)
    call("validate: no media type", "POST", "/auth/validate", content=b'{"token": "x"}')
    call(
        "validate: text/plain",
        "POST",
        "/auth/validate",
        content=b'{"token": "x"}',
        headers={"Content-Type": "text/plain"},
    )
    call(
        "validate: a key twice",
        "POST",
        "/auth/validate",
        content=b'{"token": "x", "token": "y"}',
        headers=json_type,
    )
    call("validate: a query", "POST", "/auth/validate?all=true", json={"token": "x"})
    call("validate: a token in the query", "POST", f"/auth/validate?t={generate_token()}")
    call("validate: no token", "POST", "/auth/validate", json={"required_scopes": []})
    call("validate: too big", "POST", "/auth/validate", content=b"x" * (64 * 1024 + 1))
    call("create: anonymous", "POST", "/auth/tokens", json={"name": "a", "scopes": ["read"]})
    call(
        "create: basic auth",
        "POST",
        "/auth/tokens",
        json={"name": "a", "scopes": ["read"]},
        headers={"Authorization": "Basic abc"},
    )
    call(
        "create: unknown admin",
        "POST",
        "/auth/tokens",
        json={"name": "a", "scopes": ["read"]},
        headers={"Authorization": f"Bearer {generate_token()}"},
    )
    created = call(
        "create",
        "POST",
        "/auth/tokens",
        json={
            "name": "billing",
            "scopes": ["read", "write"],
            "ttl_days": 1,
            "description": "billing service",
            "metadata": {"team": "payments"},
        },
        headers=admin,
    ).json()
    token, token_id = created["token"], created["token_id"]
    keyed = {"name": "keyed", "scopes": ["read"], "ttl_days": 3}
    key = {"Idempotency-Key": "order-4711"}
    call("create: keyed", "POST", "/auth/tokens", json=keyed, headers=admin | key)
    call("create: replayed", "POST", "/auth/tokens", json=keyed, headers=admin | key)
    call(
        "create: replayed, fields reordered",
        "POST",
        "/auth/tokens",
        content=b'{"ttl_days": 3, "scopes": ["read"], "name": "keyed", "description": null}',
        headers=admin | key | json_type,
    )
    call(
        "create: the key with another body",
        "POST",
        "/auth/tokens",
        json=keyed | {"ttl_days": 4},
        headers=admin | key,
    )
    for step, bad in [
        ("create: a key with a space", "two words"),
        ("create: an empty key", ""),
        ("create: a key too long", "k" * 256),
    ]:
        call(step, "POST", "/auth/tokens", json=keyed, headers=admin | {"Idempotency-Key": bad})
    call(
        "create: the key, not admin",
        "POST",
        "/auth/tokens",
        json=keyed,
        headers={"Authorization": f"Bearer {token}"} | key,
    )
    call(
        "create: not admin",
        "POST",
        "/auth/tokens",
        json={"name": "a", "scopes": ["read"]},
        headers={"Authorization": f"Bearer {token}"},
    )
    call("create: not json", "POST", "/auth/tokens", content=b"{nope", headers=admin | json_type)
    call(
        "create: not utf-8",
        "POST",
        "/auth/tokens",
        content=b'{"name": "\xff", "scopes": ["read"]}',
        headers=admin | json_type,
    )
    call(
        "create: a key twice",
        "POST",
        "/auth/tokens",
        content=b'{"name": "a", "name": "b", "scopes": ["read"]}',
        headers=admin | json_type,
    )
    for step, body in [
        ("create: no scopes", {"name": "a", "scopes": []}),
        ("create: bad scope", {"name": "a", "scopes": ["read", "no spaces"]}),
        ("create: extra field", {"name": "a", "scopes": ["read"], "team": "x"}),
        ("create: owner in capitals", {"name": "a", "scopes": ["read"], "owner": "Payments"}),
        ("create: owner too long", {"name": "a", "scopes": ["read"], "owner": "a" * 64}),
        ("create: tokens:manage without owner", {"name": "a", "scopes": ["tokens:manage"]}),
        ("create: ttl 0", {"name": "a", "scopes": ["read"], "ttl_days": 0}),
        ("create: blank name", {"name": "   ", "scopes": ["read"]}),
        ("create: padded name", {"name": "x ", "scopes": ["read"]}),
        ("create: a tab in the name", {"name": "a\tb", "scopes": ["read"]}),
        ("create: a scope twice", {"name": "a", "scopes": ["read", "read"]}),
        ("create: ttl true", {"name": "a", "scopes": ["read"], "ttl_days": True}),
        ("create: ttl text", {"name": "a", "scopes": ["read"], "ttl_days": "5"}),
        ("create: ttl 3.0", {"name": "a", "scopes": ["read"], "ttl_days": 3.0}),
        ("create: a NUL in the description", {"name": "a", "scopes": ["r"], "description": "\0"}),
        ("create: bad metadata key", {"name": "a", "scopes": ["r"], "metadata": {" k": "v"}}),
        ("create: bad metadata value", {"name": "a", "scopes": ["r"], "metadata": {"k": "\x01"}}),
    ]:
        call(step, "POST", "/auth/tokens", json=body, headers=admin)
    _owners(call, admin)
    _rotations(call, admin)
    validate("valid", token, "read")
    validate("insufficient", token, "admin", "read", "admin")
    call("list", "GET", "/auth/tokens", headers=admin)
    call("get", "GET", f"/auth/tokens/{token_id}", headers=admin)
    call("get: unknown id", "GET", "/auth/tokens/tok_zzzzzzzzzzzzzzzz", headers=admin)
    call("get: not an id", "GET", "/auth/tokens/nonsense", headers=admin)
    call("extend", "POST", f"/auth/tokens/{token_id}/extend", json={"days": 2}, headers=admin)
    call("extend: 0", "POST", f"/auth/tokens/{token_id}/extend", json={"days": 0}, headers=admin)
    call(
        "extend: true",
        "POST",
        f"/auth/tokens/{token_id}/extend",
        json={"days": True},
        headers=admin,
    )
    call(
        "extend: past the ceiling",
        "POST",
        f"/auth/tokens/{token_id}/extend",
        json={"days": 36_500},
        headers=admin,
    )
    call("revoke", "POST", f"/auth/tokens/{token_id}/revoke", headers=admin)
    call("revoke again", "POST", f"/auth/tokens/{token_id}/revoke", headers=admin)
    call(
        "extend revoked", "POST", f"/auth/tokens/{token_id}/extend", json={"days": 1}, headers=admin
    )
    validate("revoked", token, "read")
    call("list active", "GET", "/auth/tokens", headers=admin)
    call("list all", "GET", "/auth/tokens", params={"all": "true"}, headers=admin)
    call("audit", "GET", f"/auth/tokens/{token_id}/audit", headers=admin)
    call("audit limit 0", "GET", "/auth/audit", params={"limit": 0}, headers=admin)
    call("audit limit +5", "GET", "/auth/audit?limit=%2B5", headers=admin)
    call("audit limit 5.0", "GET", "/auth/audit?limit=5.0", headers=admin)
    call("audit limit twice", "GET", "/auth/audit?limit=5&limit=6", headers=admin)
    call("audit unknown parameter", "GET", "/auth/audit?limit[]=1", headers=admin)
    forever = call(
        "create forever", "POST", "/auth/tokens", json={"name": "f", "scopes": ["a"]}, headers=admin
    ).json()
    call(
        "extend forever",
        "POST",
        f"/auth/tokens/{forever['token_id']}/extend",
        json={"days": 1},
        headers=admin,
    )
    call("wrong method", "GET", "/auth/validate")
    call("wrong method on tokens", "PUT", "/auth/tokens", headers=admin)
    call("unknown path", "GET", "/auth/nothing", headers=admin)
    call("unknown action", "POST", f"/auth/tokens/{token_id}/explode", headers=admin)
    return seen


def _owners(call: Callable[..., httpx.Response], admin: dict[str, str]) -> None:
    """The owner steps of :func:`scenario`: a delegated admin, and another owner's token."""
    made = call(
        "create a delegated admin",
        "POST",
        "/auth/tokens",
        json={"name": "pay-admin", "scopes": ["tokens:manage", "read"], "ttl_days": 30,
              "owner": "payments"},
        headers=admin,
    ).json()  # fmt: skip
    other = call(
        "create another owner's token",
        "POST",
        "/auth/tokens",
        json={"name": "search-svc", "scopes": ["read"], "owner": "search"},
        headers=admin,
    ).json()
    delegate = {"Authorization": f"Bearer {made['token']}"}
    call("validate the delegate", "POST", "/auth/validate", json={"token": made["token"]})
    for step, body in [
        ("delegate: create", {"name": "p", "scopes": ["read"], "ttl_days": 3}),
        ("delegate: create for another", {"name": "p", "scopes": ["read"], "ttl_days": 3,
                                          "owner": "search"}),
        ("delegate: grant a scope not held", {"name": "p", "scopes": ["write"], "ttl_days": 3}),
        ("delegate: outlive itself", {"name": "p", "scopes": ["read"]}),
    ]:  # fmt: skip
        call(step, "POST", "/auth/tokens", json=body, headers=delegate)
    foreign = other["token_id"]
    call("delegate: get foreign", "GET", f"/auth/tokens/{foreign}", headers=delegate)
    call("delegate: revoke foreign", "POST", f"/auth/tokens/{foreign}/revoke", headers=delegate)
    call("delegate: audit of foreign", "GET", f"/auth/tokens/{foreign}/audit", headers=delegate)
    call("delegate: list", "GET", "/auth/tokens", headers=delegate)
    call("delegate: list another", "GET", "/auth/tokens?owner=search", headers=delegate)
    call(
        "delegate: bulk by ids",
        "POST",
        "/auth/tokens/revoke",
        json={"token_ids": [foreign]},
        headers=delegate,
    )
    call(
        "delegate: bulk for another",
        "POST",
        "/auth/tokens/revoke",
        json={"filter": {"owner": "search"}},
        headers=delegate,
    )
    call(
        "delegate: extend itself",
        "POST",
        f"/auth/tokens/{made['token_id']}/extend",
        json={"days": 1},
        headers=delegate,
    )
    call("delegate: audit", "GET", "/auth/audit", headers=delegate)
    call("list by owner", "GET", "/auth/tokens?owner=search", headers=admin)
    call("list by a bad owner", "GET", "/auth/tokens?owner=-x", headers=admin)


def _rotations(call: Callable[..., httpx.Response], admin: dict[str, str]) -> None:
    """The rotation steps of :func:`scenario`."""
    made = call(
        "create to rotate",
        "POST",
        "/auth/tokens",
        json={"name": "rolling", "scopes": ["read"], "ttl_days": 2, "metadata": {"k": "v"}},
        headers=admin,
    ).json()
    old, path = made["token"], f"/auth/tokens/{made['token_id']}/rotate"
    call("validate before rotation", "POST", "/auth/validate", json={"token": old})
    key = {"Idempotency-Key": "rotate-1"}
    body = {"grace_seconds": 600, "finish_when_idle_seconds": 120}
    new = call("rotate", "POST", path, json=body, headers=admin | key).json()
    call("rotate: replayed", "POST", path, json=body, headers=admin | key)
    call("rotate: the key, another body", "POST", path, json={"grace_seconds": 5},
         headers=admin | key)  # fmt: skip
    call("rotate again", "POST", path, json={}, headers=admin)
    call("extend the rotated", "POST", f"/auth/tokens/{made['token_id']}/extend",
         json={"days": 1}, headers=admin)  # fmt: skip
    call("validate in grace", "POST", "/auth/validate", json={"token": old})
    call("validate the successor", "POST", "/auth/validate", json={"token": new["token"]})
    call("get the rotated", "GET", f"/auth/tokens/{made['token_id']}", headers=admin)
    call("get the successor", "GET", f"/auth/tokens/{new['token_id']}", headers=admin)
    call("audit the rotated", "GET", f"/auth/tokens/{made['token_id']}/audit", headers=admin)
    call("audit the successor", "GET", f"/auth/tokens/{new['token_id']}/audit", headers=admin)
    for step, bad in [
        ("rotate: grace -1", {"grace_seconds": -1}),
        ("rotate: grace too long", {"grace_seconds": 30 * 86400 + 1}),
        ("rotate: grace text", {"grace_seconds": "60"}),
        ("rotate: grace true", {"grace_seconds": True}),
        ("rotate: idle 0", {"grace_seconds": 60, "finish_when_idle_seconds": 0}),
        ("rotate: idle too short", {"grace_seconds": 600, "finish_when_idle_seconds": 119}),
        ("rotate: idle past grace", {"grace_seconds": 600, "finish_when_idle_seconds": 601}),
        ("rotate: extra field", {"grace_seconds": 60, "x": 1}),
    ]:
        call(step, "POST", f"/auth/tokens/{new['token_id']}/rotate", json=bad, headers=admin)
    now = call(
        "rotate the successor at once",
        "POST",
        f"/auth/tokens/{new['token_id']}/rotate",
        json={"grace_seconds": 0},
        headers=admin,
    ).json()
    call("validate the revoked", "POST", "/auth/validate", json={"token": new["token"]})
    call("rotate the revoked", "POST", f"/auth/tokens/{new['token_id']}/rotate", json={},
         headers=admin)  # fmt: skip
    call("rotate: unknown id", "POST", "/auth/tokens/tok_zzzzzzzzzzzzzzzz/rotate", json={},
         headers=admin)  # fmt: skip
    call("rotate: not an id", "POST", "/auth/tokens/nonsense/rotate", json={}, headers=admin)
    call("rotate: anonymous", "POST", f"/auth/tokens/{now['token_id']}/rotate", json={})


Scenario = Callable[[httpx.Client, str], list[tuple[str, Any]]]


def assert_alike(real: ServerProcess, run: Scenario) -> None:
    """``run`` against ``real``, then against a FakeAuthServer: each step answered alike."""
    assert real.admin_token is not None
    with httpx.Client(base_url=real.base_url, timeout=30) as http:
        expected = run(http, real.admin_token)
    fake = FakeAuthServer(admin_token=real.admin_token)
    with httpx.Client(base_url=fake.base_url, transport=fake.transport()) as http:
        actual = run(http, fake.admin_token)
    differences = [
        f"{step}:\n  real {want}\n  fake {got}"
        for (step, want), (_, got) in zip(expected, actual, strict=True)
        if got != want
    ]
    assert not differences, "\n".join(differences)


@pytest.mark.timeout(60)
def test_fake_and_real_server_answer_alike(real: ServerProcess) -> None:
    assert_alike(real, scenario)


def usage_scenario(http: httpx.Client, admin_token: str) -> list[tuple[str, Any]]:
    """Uses by validation and by report, the filters, and bad reports, on one server."""
    seen: list[tuple[str, Any]] = []
    admin = {"Authorization": f"Bearer {admin_token}"}

    def call(step: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = http.request(method, path, **kwargs)
        body = response.json() if response.content else None
        seen.append((step, (response.status_code, normalise(body, usage=True))))
        return response

    owner = {"owner": "usage"}
    made = http.post(
        "/auth/tokens", json={"name": "used", "scopes": ["read"], **owner}, headers=admin
    ).json()
    http.post("/auth/tokens", json={"name": "idle", "scopes": ["read"], **owner}, headers=admin)
    call("never used", "GET", f"/auth/tokens/{made['token_id']}", headers=admin)
    for required in ([], ["read"], ["write"]):
        body = {"token": made["token"], "required_scopes": required}
        http.post("/auth/validate", json=body).raise_for_status()
    hits = {"hits": [{"token_hash": hash_token(made["token"]), "count": 4}]}
    call("report", "POST", "/auth/usage", json=hits)
    call("report an unknown hash", "POST", "/auth/usage", json={
        "hits": [{"token_hash": hash_token(generate_token()), "count": 4}]
    })  # fmt: skip
    for step, bad in [
        ("report: no hits", {}),
        ("report: extra field", {"hits": [], "at": "now"}),
        ("report: a raw token", {"hits": [{"token_hash": made["token"], "count": 1}]}),
        ("report: zero", {"hits": [{"token_hash": "ab" * 32, "count": 0}]}),
        ("report: a string count", {"hits": [{"token_hash": "ab" * 32, "count": "1"}]}),
    ]:
        call(step, "POST", "/auth/usage", json=bad)

    def total() -> int:
        info = http.get(f"/auth/tokens/{made['token_id']}", headers=admin).json()
        return sum(day["count"] for day in info["usage"])

    wait_for(lambda: total() >= 7)
    call("used", "GET", f"/auth/tokens/{made['token_id']}", headers=admin)
    for query in ("unused_for_days=1", "used_within_days=1", "unused_for_days=0"):
        call(query, "GET", f"/auth/tokens?owner=usage&{query}", headers=admin)
    call("bulk by usage", "POST", "/auth/tokens/revoke", headers=admin, json={
        "filter": {"owner": "usage", "unused_for_days": 30}, "dry_run": True
    })  # fmt: skip
    return seen


@pytest.mark.timeout(60)
def test_fake_and_real_server_count_usage_alike(real: ServerProcess) -> None:
    assert_alike(real, usage_scenario)


@pytest.mark.timeout(60)
def test_the_sync_client_end_to_end(real: ServerProcess, clock: FakeClock) -> None:
    with AuthClient(real.base_url, admin_token=real.admin_token, cache_ttl=30) as auth:
        created = auth.create_token("e2e", ["orders:read", "orders:write"], ttl_days=1)
        assert auth.validate(created.token, ["orders:read"]).valid
        assert auth.validate(created.token, ["orders:admin"]).missing_scopes == ("orders:admin",)
        assert auth.get_token(created.token_id).status == "active"
        with AuthClient(real.base_url, cache_ttl=30) as elsewhere:
            assert elsewhere.validate(created.token).valid
            assert auth.revoke_token(created.token_id).status == "revoked"
            # The revoking client forgets its own answer at once...
            revoked = auth.validate(created.token)
            assert (revoked.valid, revoked.reason, revoked.token_id) == (
                False,
                "revoked",
                created.token_id,
            )
            # ...another process's client holds its answer up to cache_ttl: the
            # documented staleness, and no longer.
            assert elsewhere.validate(created.token).valid
            clock.advance(30)
            assert elsewhere.validate(created.token).reason == "revoked"
        with pytest.raises(TokenConflict):
            auth.extend_token(created.token_id, 1)
        with pytest.raises(TokenNotFound):
            auth.get_token("tok_zzzzzzzzzzzzzzzz")
        assert created.token_id in {t.token_id for t in auth.list_tokens(include_revoked=True)}
        assert [e.action for e in auth.token_audit(created.token_id)] == ["revoke", "create"]
        assert auth.validate(generate_token()).reason == "unknown"
        stats = auth.cache_stats()
        assert (stats.hits, stats.requests) == (1, 3)
        with (
            AuthClient(real.base_url, admin_token=created.token) as revoked_admin,
            pytest.raises(AdminTokenInvalid, match="revoked"),
        ):
            revoked_admin.list_tokens()
        reader = auth.create_token("reader", ["read"])
        with (
            AuthClient(real.base_url, admin_token=reader.token) as not_admin,
            pytest.raises(AdminPermissionDenied),
        ):
            not_admin.list_tokens()


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_the_async_client_end_to_end(real: ServerProcess) -> None:
    async with AsyncAuthClient(real.base_url, admin_token=real.admin_token) as auth:
        created = await auth.create_token("e2e-async", ["read"], ttl_days=1)
        results = [await auth.validate(created.token, ["read"]) for _ in range(10)]
        assert all(results)
        extended = await auth.extend_token(created.token_id, 1)
        assert extended.expires_at is not None
        assert created.expires_at is not None
        assert extended.expires_at > created.expires_at
        assert auth.cache_stats().requests == 1


@pytest.mark.timeout(60)
def test_both_servers_positive_answers_are_whole_to_the_sdk(real: ServerProcess) -> None:
    # The SDK refuses a positive answer with any field missing or off-type:
    # neither server may drift from what it reads.
    fake = FakeAuthServer(admin_token=real.admin_token)
    for http in (
        httpx.Client(base_url=real.base_url, timeout=30),
        httpx.Client(base_url=fake.base_url, transport=fake.transport()),
    ):
        with http:
            admin = {"Authorization": f"Bearer {real.admin_token}"}
            for ttl in (None, 1):
                body = {"name": "whole", "scopes": ["read"], "ttl_days": ttl}
                token = http.post("/auth/tokens", json=body, headers=admin).json()["token"]
                answer = http.post("/auth/validate", json={"token": token}).json()
                parsed = parse_answer(answer)
                assert parsed.positive
                assert (parsed.expires_at is None) == (ttl is None)
