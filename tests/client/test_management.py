"""Management calls send the admin token, parse the records, and map each error to our tree."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import cast

import httpx
import pytest
import respx

from amplify_auth_client import (
    AdminPermissionDenied,
    AdminTokenInvalid,
    AsyncAuthClient,
    AuditEntry,
    AuthClient,
    AuthError,
    AuthRequestError,
    AuthServiceUnavailable,
    InvalidRequest,
    TokenConflict,
    TokenInfo,
    TokenNotFound,
    TokenStatus,
    generate_token,
)
from tests.client.support import BASE_URL, CREATED_AT, OTHER_ID, TOKEN_ID, error, page, record

ADMIN = generate_token()
RAW = generate_token()
AUDIT = {
    "id": 7,
    "at": "2026-01-02T03:04:05Z",
    "actor_id": OTHER_ID,
    "actor_name": "admin (bootstrap)",
    "action": "extend",
    "token_id": TOKEN_ID,
    "details": {"expires_at": "2026-03-01T12:00:00+00:00"},
}


@pytest.fixture
def client() -> AuthClient:
    return AuthClient(BASE_URL, admin_token=ADMIN)


def created_body(**changes: object) -> dict[str, object]:
    return {
        "token": RAW,
        "token_id": TOKEN_ID,
        "name": "billing",
        "scopes": ["invoices:read", "invoices:write"],
        "created_at": CREATED_AT,
        "expires_at": "2026-01-31T12:00:00.123456Z",
        "description": "billing service",
        "metadata": {"team": "payments"},
        **changes,
    }


def test_create_token(api: respx.MockRouter, client: AuthClient) -> None:
    route = api.post("/auth/tokens").mock(return_value=httpx.Response(201, json=created_body()))
    created = client.create_token(
        "billing",
        ["invoices:read", "invoices:write"],
        ttl_days=30,
        description="billing service",
        metadata={"team": "payments"},
    )
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {ADMIN}"
    assert json.loads(request.content) == {
        "name": "billing",
        "scopes": ["invoices:read", "invoices:write"],
        "ttl_days": 30,
        "description": "billing service",
        "metadata": {"team": "payments"},
    }
    assert created.token == RAW
    assert created.token_id == TOKEN_ID
    assert created.scopes == ("invoices:read", "invoices:write")
    assert created.created_at == datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert created.expires_at == datetime(2026, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)
    assert created.metadata == {"team": "payments"}


def test_create_token_leaves_out_what_was_not_given(
    api: respx.MockRouter, client: AuthClient
) -> None:
    route = api.post("/auth/tokens").mock(
        return_value=httpx.Response(
            201, json=created_body(expires_at=None, description=None, metadata=None)
        )
    )
    created = client.create_token("ci", ("read",))
    assert json.loads(route.calls.last.request.content) == {"name": "ci", "scopes": ["read"]}
    assert (created.expires_at, created.description, created.metadata) == (None, None, None)


def test_create_token_refuses_a_str_of_scopes(client: AuthClient) -> None:
    with pytest.raises(TypeError):
        client.create_token("ci", "read")


def test_list_tokens(api: respx.MockRouter, client: AuthClient) -> None:
    route = api.get("/auth/tokens").mock(
        return_value=page(record(), record(OTHER_ID, expires_at=None))
    )
    tokens = client.list_tokens()
    assert route.calls.last.request.url.query == b"limit=100"
    assert [t.token_id for t in tokens] == [TOKEN_ID, OTHER_ID]
    first = tokens[0]
    assert isinstance(first, TokenInfo)
    assert (first.name, first.scopes, first.status) == ("billing", ("invoices:read",), "active")
    assert first.expires_at == datetime(2026, 2, 1, 12, tzinfo=UTC)
    assert tokens[1].expires_at is None


def test_list_tokens_with_revoked_asks_for_all(api: respx.MockRouter, client: AuthClient) -> None:
    route = api.get("/auth/tokens", params={"status": "all"}).mock(
        return_value=page(
            record(status="revoked", revoked_at="2026-01-05T00:00:00Z"),
            record(OTHER_ID, status="expired"),
        )
    )
    tokens = client.list_tokens(include_revoked=True)
    assert route.call_count == 1
    assert [t.status for t in tokens] == ["revoked", "expired"]
    assert tokens[0].revoked_at == datetime(2026, 1, 5, tzinfo=UTC)


def test_get_revoke_extend(api: respx.MockRouter, client: AuthClient) -> None:
    api.get(f"/auth/tokens/{TOKEN_ID}").mock(return_value=httpx.Response(200, json=record()))
    api.post(f"/auth/tokens/{TOKEN_ID}/revoke").mock(
        return_value=httpx.Response(200, json=record(status="revoked", revoked_at=CREATED_AT))
    )
    extend = api.post(f"/auth/tokens/{TOKEN_ID}/extend").mock(
        return_value=httpx.Response(200, json=record(expires_at="2026-03-03T12:00:00Z"))
    )
    assert client.get_token(TOKEN_ID).token_id == TOKEN_ID
    assert client.revoke_token(TOKEN_ID).status == "revoked"
    extended = client.extend_token(TOKEN_ID, 30)
    assert json.loads(extend.calls.last.request.content) == {"days": 30}
    assert extended.expires_at == datetime(2026, 3, 3, 12, tzinfo=UTC)


def test_audit_trails(api: respx.MockRouter, client: AuthClient) -> None:
    one = api.get(f"/auth/tokens/{TOKEN_ID}/audit", params={"limit": "5"}).mock(
        return_value=page(AUDIT)
    )
    every = api.get("/auth/audit", params={"limit": "100"}).mock(
        return_value=page(AUDIT, {**AUDIT, "id": 6, "token_id": None})
    )
    [entry] = client.token_audit(TOKEN_ID, limit=5)
    assert entry == AuditEntry(
        id=7,
        at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        actor_id=OTHER_ID,
        actor_name="admin (bootstrap)",
        action="extend",
        token_id=TOKEN_ID,
        details={"expires_at": "2026-03-01T12:00:00+00:00"},
    )
    assert [e.id for e in client.audit()] == [7, 6]
    assert (one.call_count, every.call_count) == (1, 1)


def test_unknown_statuses_pass_through(api: respx.MockRouter, client: AuthClient) -> None:
    # A newer server's status must not break an older client's listing.
    api.get("/auth/tokens").mock(return_value=page(record(status="suspended")))
    assert client.list_tokens()[0].status == cast(TokenStatus, "suspended")


ERRORS = [
    (400, "bad_request", InvalidRequest),
    (401, "unauthorized", AdminTokenInvalid),
    (403, "forbidden", AdminPermissionDenied),
    (404, "not_found", TokenNotFound),
    (409, "conflict", TokenConflict),
    (413, "payload_too_large", InvalidRequest),
    (422, "invalid_request", InvalidRequest),
]


@pytest.mark.parametrize(("status", "code", "raises"), ERRORS)
def test_4xx_map_to_the_error_tree(
    api: respx.MockRouter,
    client: AuthClient,
    status: int,
    code: str,
    raises: type[AuthRequestError],
) -> None:
    api.post(f"/auth/tokens/{TOKEN_ID}/extend").mock(
        return_value=error(status, code, "the server's explanation")
    )
    with pytest.raises(raises) as raised:
        client.extend_token(TOKEN_ID, 1)
    exc = raised.value
    assert isinstance(exc, AuthRequestError)
    assert isinstance(exc, AuthError)
    assert (exc.status_code, exc.code, exc.detail) == (status, code, "the server's explanation")
    # The message says what went wrong and what to do about it.
    assert "the server's explanation" in str(exc)
    assert f"HTTP {status}" in str(exc)
    assert raises.hint in str(exc)


def test_422_field_errors_are_kept(api: respx.MockRouter, client: AuthClient) -> None:
    errors = [{"loc": ["body", "scopes", 0], "msg": "String should match pattern", "type": "x"}]
    api.post("/auth/tokens").mock(
        return_value=error(422, "invalid_request", "does not match the schema", errors=errors)
    )
    with pytest.raises(InvalidRequest) as raised:
        client.create_token("ci", ["bad scope"])
    assert raised.value.errors == tuple(errors)
    assert "body.scopes.0: String should match pattern" in str(raised.value)


def test_503_is_unavailable_after_retries(api: respx.MockRouter, client: AuthClient) -> None:
    route = api.get("/auth/tokens").mock(return_value=error(503, "unavailable", "retry shortly"))
    with pytest.raises(AuthServiceUnavailable) as raised:
        client.list_tokens()
    assert raised.value.status_code == 503
    assert "retry shortly" in str(raised.value)
    assert route.call_count == 4


def test_an_unexpected_status_points_at_base_url(api: respx.MockRouter, client: AuthClient) -> None:
    api.get("/auth/tokens").mock(
        return_value=httpx.Response(302, headers={"Location": "http://login.example"})
    )
    with pytest.raises(AuthRequestError) as raised:
        client.list_tokens()
    assert type(raised.value) is AuthRequestError
    assert raised.value.status_code == 302
    assert "base_url" in str(raised.value)


def test_a_proxy_error_page_is_handled(api: respx.MockRouter, client: AuthClient) -> None:
    api.get("/auth/tokens").mock(return_value=httpx.Response(404, text="<h1>Not Found</h1>"))
    with pytest.raises(TokenNotFound) as raised:
        client.list_tokens()
    assert raised.value.code == "http_404"


def test_without_an_admin_token_nothing_is_sent(api: respx.MockRouter) -> None:
    client = AuthClient(BASE_URL)
    with pytest.raises(AdminTokenInvalid, match="AUTH_ADMIN_TOKEN") as raised:
        client.list_tokens()
    assert raised.value.status_code is None
    assert len(api.calls) == 0


def test_the_admin_token_comes_from_the_environment(
    api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_ADMIN_TOKEN", ADMIN)
    route = api.get("/auth/tokens").mock(return_value=page())
    assert list(AuthClient(BASE_URL).list_tokens()) == []
    assert route.calls.last.request.headers["authorization"] == f"Bearer {ADMIN}"


@pytest.mark.parametrize("bad_id", ["", "tok_short", "TOK_0123456789ABCDEF", "../validate", "x/y"])
def test_impossible_ids_are_refused_before_sending(
    api: respx.MockRouter, client: AuthClient, bad_id: str
) -> None:
    with pytest.raises(InvalidRequest, match="tok_") as raised:
        client.get_token(bad_id)
    assert raised.value.status_code is None
    assert len(api.calls) == 0


def test_arguments_that_cannot_be_json_are_refused_before_sending(
    api: respx.MockRouter, client: AuthClient
) -> None:
    with pytest.raises(InvalidRequest, match="cannot be sent") as raised:
        client.create_token("bad \ud800 name", ["read"])
    assert raised.value.status_code is None
    assert len(api.calls) == 0


@pytest.mark.anyio
async def test_async_management(api: respx.MockRouter) -> None:
    api.post("/auth/tokens").mock(return_value=httpx.Response(201, json=created_body()))
    api.get("/auth/tokens").mock(return_value=page(record()))
    api.get(f"/auth/tokens/{TOKEN_ID}").mock(return_value=httpx.Response(200, json=record()))
    api.post(f"/auth/tokens/{TOKEN_ID}/revoke").mock(
        return_value=httpx.Response(200, json=record(status="revoked", revoked_at=CREATED_AT))
    )
    api.post(f"/auth/tokens/{TOKEN_ID}/extend").mock(
        return_value=error(409, "conflict", "a revoked token cannot be extended")
    )
    api.get(f"/auth/tokens/{TOKEN_ID}/audit").mock(return_value=page(AUDIT))
    api.get("/auth/audit").mock(return_value=error(403, "forbidden", "lacks the admin scope"))
    async with AsyncAuthClient(BASE_URL, admin_token=ADMIN) as client:
        assert (await client.create_token("billing", ["invoices:read"])).token == RAW
        assert [t.token_id for t in await client.list_tokens()] == [TOKEN_ID]
        assert (await client.get_token(TOKEN_ID)).status == "active"
        assert (await client.revoke_token(TOKEN_ID)).status == "revoked"
        with pytest.raises(TokenConflict):
            await client.extend_token(TOKEN_ID, 1)
        assert [e.action for e in await client.token_audit(TOKEN_ID)] == ["extend"]
        with pytest.raises(AdminPermissionDenied):
            await client.audit()


def test_owners_are_sent_and_read(api: respx.MockRouter, client: AuthClient) -> None:
    created = api.post("/auth/tokens").mock(
        return_value=httpx.Response(201, json=created_body(owner="payments"))
    )
    listed = api.get("/auth/tokens").mock(return_value=page(record(owner="payments")))
    by_filter = api.post("/auth/tokens/revoke").mock(
        return_value=httpx.Response(
            200,
            json={"revoked_count": 2, "revoked": None, "already_revoked": None, "not_found": None},
        )
    )
    with client:
        assert client.create_token("billing", ["read"], owner="payments").owner == "payments"
        assert [t.owner for t in client.list_tokens(owner="payments")] == ["payments"]
        assert client.revoke_where(owner="payments") == 2
    assert json.loads(created.calls.last.request.content)["owner"] == "payments"
    assert listed.calls.last.request.url.params["owner"] == "payments"
    assert json.loads(by_filter.calls.last.request.content)["filter"] == {"owner": "payments"}


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("forbidden", "use a token holding admin, or tokens:manage"),
        ("other_owner", "manages only its own owner's tokens"),
        ("scope_not_held", "grants only scopes it holds itself"),
        ("expires_after_manager", "makes nothing that outlives it"),
    ],
)
def test_a_403_says_whether_the_token_lacks_the_scope_or_asked_beyond_its_delegation(
    api: respx.MockRouter, client: AuthClient, code: str, hint: str
) -> None:
    api.post("/auth/tokens").mock(return_value=error(403, code, "refused"))
    with client, pytest.raises(AdminPermissionDenied) as refused:
        client.create_token("x", ["read"])
    assert refused.value.code == code
    assert refused.value.lacks_scope == (code == "forbidden")
    assert refused.value.beyond_delegation == (code != "forbidden")
    assert hint in str(refused.value)


def test_a_throttled_client_is_told_so_not_pointed_at_base_url(
    api: respx.MockRouter, client: AuthClient
) -> None:
    detail = "too many failed admin authentications from this client; retry in 42 s"
    api.get("/auth/tokens").mock(return_value=error(429, "too_many_failures", detail))
    with pytest.raises(AuthRequestError) as raised:
        client.list_tokens()
    assert type(raised.value) is AuthRequestError
    assert (raised.value.status_code, raised.value.code) == (429, "too_many_failures")
    assert detail in str(raised.value)
    assert "base_url" not in str(raised.value)


def test_a_throttled_validation_fails_closed_and_says_why(
    api: respx.MockRouter, client: AuthClient
) -> None:
    api.post("/auth/validate").mock(
        return_value=error(429, "too_many_failures", "too many failed validations")
    )
    with pytest.raises(AuthServiceUnavailable) as raised:
        client.validate(generate_token())
    assert raised.value.status_code == 429
    assert "budget of failures" in str(raised.value)
    assert "base_url" not in str(raised.value)
