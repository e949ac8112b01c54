"""FakeAuthServer speaks the HTTP contract, so both clients work against it unpatched."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from amplify_auth_client import (
    AdminPermissionDenied,
    AdminTokenInvalid,
    AuthServiceUnavailable,
    InvalidRequest,
    TokenConflict,
    TokenNotFound,
    generate_token,
)
from amplify_auth_client.testing import FakeAuthServer


class Now:
    """A wall clock for the fake server, moved by hand."""

    def __init__(self) -> None:
        # From the real time on: the SDK refuses a "valid" for a token that
        # its own clock says has expired, and this clock only moves forward.
        self.value = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.value


def test_the_sync_client_lifecycle() -> None:
    server = FakeAuthServer()
    with server.client(cache_ttl=0) as auth:
        created = auth.create_token("billing", ["invoices:read"], ttl_days=30)
        assert auth.validate(created.token, ["invoices:read"])
        denied = auth.validate(created.token, ["invoices:write"])
        assert (denied.reason, denied.missing_scopes) == ("insufficient_scope", ("invoices:write",))
        assert auth.get_token(created.token_id).status == "active"
        assert auth.revoke_token(created.token_id).status == "revoked"
        assert auth.revoke_token(created.token_id).status == "revoked"  # idempotent
        assert auth.validate(created.token).reason == "revoked"
        with pytest.raises(TokenConflict, match="revoked"):
            auth.extend_token(created.token_id, 1)
        assert [t.token_id for t in auth.list_tokens()] == [server.admin_token_id]
        assert created.token_id in {t.token_id for t in auth.list_tokens(include_revoked=True)}
        actions = [e.action for e in auth.token_audit(created.token_id)]
        assert actions == ["revoke", "create"]  # newest first; the second revoke changed nothing
        assert auth.audit(limit=1)[0].actor_id == server.admin_token_id


@pytest.mark.anyio
async def test_the_async_client_lifecycle() -> None:
    server = FakeAuthServer()
    async with server.async_client() as auth:
        created = await auth.create_token("reports", ["orders:read"], ttl_days=1)
        assert (await auth.validate(created.token, ["orders:read"])).valid
        extended = await auth.extend_token(created.token_id, 2)
        assert extended.expires_at is not None
        assert created.expires_at is not None
        assert extended.expires_at - created.expires_at == timedelta(days=2)
        with pytest.raises(TokenNotFound):
            await auth.get_token("tok_0000000000000000")
        assert (await auth.validate(generate_token())).reason == "unknown"
    assert server.validation_requests() == 2


def test_expiry_follows_the_servers_clock() -> None:
    now = Now()
    server = FakeAuthServer(now=now)
    token = server.add_token("ci", ["read"], expires_at=now.value + timedelta(hours=1))
    with server.client(cache_size=0) as auth:
        assert auth.validate(token.token)
        now.value += timedelta(hours=1)
        result = auth.validate(token.token)
        assert (result.valid, result.reason, result.token_id) == (False, "expired", token.token_id)
        assert auth.get_token(token.token_id).status == "expired"
        assert token.token_id not in {t.token_id for t in auth.list_tokens()}
        # Extending an expired token counts from now, as the real server does.
        extended = auth.extend_token(token.token_id, 1)
        assert extended.expires_at == now.value + timedelta(days=1)
        assert auth.validate(token.token)


def test_the_cache_saves_requests_against_it() -> None:
    server = FakeAuthServer()
    token = server.add_token("ci", ["read", "write"]).token
    with server.client() as auth:
        for scopes in (["read"], ["write"], ["read", "write"], []):
            assert auth.validate(token, scopes)
    assert server.validation_requests() == 1


def test_an_outage_fails_closed() -> None:
    server = FakeAuthServer()
    token = server.add_token("ci", ["read"]).token
    server.available = False
    with server.client() as auth, pytest.raises(AuthServiceUnavailable) as raised:
        auth.validate(token)
    assert raised.value.status_code == 503
    assert server.validation_requests() == 4  # retried, instantly in tests


def test_admin_errors() -> None:
    server = FakeAuthServer()
    reader = server.add_token("reader", ["read"])
    with server.client(admin_token=reader.token) as auth, pytest.raises(AdminPermissionDenied):
        auth.list_tokens()
    with (
        server.client(admin_token=generate_token()) as auth,
        pytest.raises(AdminTokenInvalid, match="unknown"),
    ):
        auth.list_tokens()


def test_invalid_arguments_get_422_with_field_errors() -> None:
    server = FakeAuthServer()
    with server.client() as auth:
        with pytest.raises(InvalidRequest) as raised:
            auth.create_token("ci", [])
        assert raised.value.status_code == 422
        assert raised.value.errors[0]["loc"] == ["body", "scopes"]
        with pytest.raises(InvalidRequest):
            auth.create_token("ci", ["not a scope"])
        with pytest.raises(InvalidRequest):
            auth.create_token("  ", ["read"])
        with pytest.raises(InvalidRequest):
            auth.create_token("ci", ["read"], ttl_days=0)
        created = auth.create_token("ci", ["read"], ttl_days=1)
        with pytest.raises(InvalidRequest):
            auth.extend_token(created.token_id, 0)
        with pytest.raises(InvalidRequest):
            auth.token_audit(created.token_id, limit=0)


@pytest.fixture
def raw() -> Iterator[tuple[FakeAuthServer, httpx.Client]]:
    """The fake server and a bare httpx client to it: the wire, without the SDK."""
    server = FakeAuthServer()
    with httpx.Client(base_url=server.base_url, transport=server.transport()) as http:
        yield server, http


def test_the_wire_format_of_validate(raw: tuple[FakeAuthServer, httpx.Client]) -> None:
    server, http = raw
    token = server.add_token("ci", ["read"], expires_at=datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    answer = http.post("/auth/validate", json={"token": token.token, "required_scopes": ["x"]})
    assert answer.status_code == 200
    assert answer.json() == {
        "valid": False,
        "scopes": ["read"],
        "token_id": token.token_id,
        "name": "ci",
        "owner": None,
        "reason": "insufficient_scope",
        "missing_scopes": ["x"],
        "expires_at": "2030-01-01T00:00:01Z",
        "replaced_by": None,
    }
    assert http.post("/auth/validate", json={"token": "nope"}).json()["reason"] == "malformed"
    bad = http.post(
        "/auth/validate", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 422
    assert set(bad.json()) == {"error", "detail", "errors"}
    assert http.post("/auth/validate", content=b'{"token": "x"}').status_code == 415
    assert http.post("/auth/validate", content=b"x" * (64 * 1024 + 1)).status_code == 413


def test_the_wire_format_of_management(raw: tuple[FakeAuthServer, httpx.Client]) -> None:
    server, http = raw
    anonymous = http.get("/auth/tokens")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "unauthorized"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    admin = {"Authorization": f"Bearer {server.admin_token}"}
    created = http.post("/auth/tokens", json={"name": "ci", "scopes": ["read"]}, headers=admin)
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    assert set(created.json()) == {
        "token",
        "token_id",
        "name",
        "scopes",
        "created_at",
        "expires_at",
        "description",
        "metadata",
        "owner",
    }
    token_id = created.json()["token_id"]
    listed = http.get("/auth/tokens", headers=admin).json()["items"]
    assert set(listed[0]) == {
        "token_id",
        "name",
        "scopes",
        "status",
        "created_at",
        "expires_at",
        "revoked_at",
        "description",
        "metadata",
        "owner",
        "last_used_at",
        "replaced_by",
        "rotated_from",
        "finish_when_idle_seconds",
    }
    assert listed[-1]["created_at"].endswith("Z")
    never = http.post(f"/auth/tokens/{token_id}/extend", json={"days": 1}, headers=admin)
    assert (never.status_code, never.json()["error"]) == (409, "conflict")
    missing = http.get("/auth/tokens/tok_zzzzzzzzzzzzzzzz", headers=admin)
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    extra = http.post("/auth/tokens", json={"name": "x", "scopes": ["a"], "x": 1}, headers=admin)
    assert extra.status_code == 422
    server.available = False
    down = http.get("/auth/tokens", headers=admin)
    assert (down.status_code, down.headers["Retry-After"]) == (503, "1")
    assert down.json()["error"] == "unavailable"


def test_arranging_a_revocation_directly() -> None:
    server = FakeAuthServer()
    token = server.add_token("ci", ["read"])
    server.revoke(token.token_id)
    server.revoke(token.token_id)  # idempotent, as the API's revoke is
    with server.client(cache_size=0) as auth:
        assert auth.validate(token.token).reason == "revoked"
        trail = auth.token_audit(token.token_id)
    assert [(e.action, e.actor_id) for e in trail] == [("revoke", "system"), ("create", "system")]


def test_a_client_forgets_a_token_it_revoked_or_extended_and_only_that_one() -> None:
    server = FakeAuthServer()
    with server.client(cache_ttl=3600) as auth:
        doomed = auth.create_token("doomed", ["read"])
        kept = auth.create_token("kept", ["read"], ttl_days=1)
        assert auth.validate(doomed.token).valid
        assert auth.validate(kept.token).valid
        auth.revoke_token(doomed.token_id)
        assert auth.validate(doomed.token).reason == "revoked"  # asked again, not cached
        assert auth.validate(kept.token).cached
        auth.extend_token(kept.token_id, 5)
        refreshed = auth.validate(kept.token)
        assert not refreshed.cached
        assert refreshed.expires_at == auth.get_token(kept.token_id).expires_at


@pytest.mark.anyio
async def test_the_async_client_forgets_a_token_it_revoked() -> None:
    server = FakeAuthServer()
    async with server.async_client(cache_ttl=3600) as auth:
        created = await auth.create_token("doomed", ["read"])
        assert (await auth.validate(created.token)).valid
        await auth.revoke_token(created.token_id)
        assert (await auth.validate(created.token)).reason == "revoked"


def test_the_fake_delegates_as_the_server_does() -> None:
    server = FakeAuthServer()
    team = server.add_token(
        "team-admin",
        ["tokens:manage", "read"],
        owner="team",
        expires_at=datetime.now(UTC) + timedelta(days=30),
    )
    outsider = server.add_token("outsider", ["read"], owner="elsewhere")
    with server.client(admin_token=team.token) as delegate:
        made = delegate.create_token("svc", ["read"], ttl_days=3)
        assert made.owner == "team"
        assert delegate.validate(made.token).caller.owner == "team"  # type: ignore[union-attr]
        assert {t.token_id for t in delegate.iter_tokens()} == {team.token_id, made.token_id}
        with pytest.raises(TokenNotFound):
            delegate.revoke_token(outsider.token_id)
        with pytest.raises(AdminPermissionDenied) as refused:
            delegate.create_token("root", ["admin"], ttl_days=3)
        assert refused.value.beyond_delegation
        assert refused.value.code == "scope_not_held"
        assert "grants only scopes it holds" in str(refused.value)
    with server.client(admin_token=outsider.token) as plain:
        with pytest.raises(AdminPermissionDenied) as lacking:
            plain.list_tokens()
        assert lacking.value.lacks_scope
    with server.client() as admin:
        assert admin.get_token(outsider.token_id).status == "active"
        with pytest.raises(InvalidRequest):
            admin.create_token("nobody", ["tokens:manage"])
