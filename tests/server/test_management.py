"""The management API: create, list, inspect, revoke, extend, audit; and its protection."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest

from amplify_auth_client import token_is_well_formed
from amplify_auth_server.models import utcnow
from tests.conftest import insert_token
from tests.server.conftest import create, validate
from tests.support.server import Backend, ServerProcess

RECORD_FIELDS = {
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


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_create_returns_the_raw_token_once_and_forbids_caching(admin: httpx.Client) -> None:
    response = admin.post(
        "/auth/tokens",
        json={
            "name": "svc",
            "scopes": ["read", "write"],
            "ttl_days": 365,
            "description": "for the billing service",
            "metadata": {"team": "billing"},
        },
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {
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
    assert body["owner"] is None
    assert token_is_well_formed(body["token"])
    assert body["token_id"].startswith("tok_")
    assert body["scopes"] == ["read", "write"]
    assert parse(body["expires_at"]) - parse(body["created_at"]) == timedelta(days=365)
    # Nothing else ever shows it again.
    record = admin.get(f"/auth/tokens/{body['token_id']}")
    assert body["token"] not in record.text
    assert set(record.json()) == RECORD_FIELDS | {"usage"}
    assert record.json()["description"] == "for the billing service"
    assert record.json()["metadata"] == {"team": "billing"}
    assert body["token"] not in admin.get("/auth/tokens", params={"all": "true"}).text


def test_a_token_without_ttl_never_expires(admin: httpx.Client) -> None:
    created = create(admin)
    assert created["expires_at"] is None
    assert admin.get(f"/auth/tokens/{created['token_id']}").json()["status"] == "active"


def test_list_shows_active_tokens_and_all_shows_the_rest(
    backend: Backend, admin: httpx.Client
) -> None:
    active = create(admin, name="active-one")["token_id"]
    revoked = create(admin, name="revoked-one")["token_id"]
    admin.post(f"/auth/tokens/{revoked}/revoke").raise_for_status()
    _, expired = insert_token(backend, name="expired-one", expires_at=utcnow() - timedelta(days=1))

    listed = admin.get("/auth/tokens")
    assert listed.status_code == 200
    assert set(listed.json()) == {"items", "next_cursor"}
    ids = {r["token_id"] for r in listed.json()["items"]}
    assert active in ids
    assert not ids & {revoked, expired}
    assert all(set(r) == RECORD_FIELDS for r in listed.json()["items"])

    statuses = {
        r["token_id"]: r["status"] for r in admin.get("/auth/tokens?all=true").json()["items"]
    }
    assert statuses[active] == "active"
    assert statuses[revoked] == "revoked"
    assert statuses[expired] == "expired"


def test_no_hash_appears_in_any_management_answer(admin: httpx.Client) -> None:
    from amplify_auth_client import hash_token

    created = create(admin)
    digest = hash_token(created["token"])
    for path in (
        "/auth/tokens?all=true",
        f"/auth/tokens/{created['token_id']}",
        f"/auth/tokens/{created['token_id']}/audit",
        "/auth/audit",
    ):
        assert digest not in admin.get(path).text


def test_revoke_is_immediate_and_idempotent(admin: httpx.Client) -> None:
    created = create(admin)
    first = admin.post(f"/auth/tokens/{created['token_id']}/revoke")
    assert first.status_code == 200
    assert first.json()["status"] == "revoked"
    assert first.json()["revoked_at"] is not None
    second = admin.post(f"/auth/tokens/{created['token_id']}/revoke")
    assert second.status_code == 200
    assert second.json()["revoked_at"] == first.json()["revoked_at"]
    assert validate(admin, created["token"])["reason"] == "revoked"
    revokes = [
        e
        for e in admin.get(f"/auth/tokens/{created['token_id']}/audit").json()["items"]
        if e["action"] == "revoke"
    ]
    assert len(revokes) == 1


def test_extend_pushes_the_expiry_and_validation_sees_it(
    backend: Backend, admin: httpx.Client
) -> None:
    created = create(admin, ttl_days=10)
    response = admin.post(f"/auth/tokens/{created['token_id']}/extend", json={"days": 5})
    assert response.status_code == 200
    assert parse(response.json()["expires_at"]) - parse(created["expires_at"]) == timedelta(days=5)
    assert validate(admin, created["token"])["expires_at"] == response.json()["expires_at"]

    # An expired token comes back to life from now, not from its old expiry.
    raw, token_id = insert_token(backend, expires_at=utcnow() - timedelta(days=3))
    assert validate(admin, raw)["reason"] == "expired"
    revived = admin.post(f"/auth/tokens/{token_id}/extend", json={"days": 1})
    assert revived.json()["status"] == "active"
    assert parse(revived.json()["expires_at"]) > utcnow() + timedelta(hours=23)
    assert validate(admin, raw)["valid"] is True


def test_extend_refuses_revoked_and_never_expiring_tokens(admin: httpx.Client) -> None:
    forever = create(admin)["token_id"]
    response = admin.post(f"/auth/tokens/{forever}/extend", json={"days": 5})
    assert response.status_code == 409
    assert "never expires" in response.json()["detail"]

    revoked = create(admin, ttl_days=1)["token_id"]
    admin.post(f"/auth/tokens/{revoked}/revoke").raise_for_status()
    response = admin.post(f"/auth/tokens/{revoked}/extend", json={"days": 5})
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"


@pytest.mark.parametrize(
    "path",
    [
        "/auth/tokens/tok_doesnotexist0000",
        "/auth/tokens/nope",
        "/auth/tokens/%F0%9F%94%91",
        "/auth/tokens/tok_%00aaaaaaaaaaaaaaa",
        "/auth/tokens/" + "a" * 500,
    ],
    ids=["well-formed", "short", "emoji", "nul", "long"],
)
def test_an_unknown_id_is_a_404_everywhere(admin: httpx.Client, path: str) -> None:
    for response in (
        admin.get(path),
        admin.post(path + "/revoke"),
        admin.post(path + "/extend", json={"days": 1}),
        admin.get(path + "/audit"),
    ):
        assert response.status_code in (404, 422), response.text
        assert response.json()["error"] in ("not_found", "invalid_request")


def test_a_well_formed_unknown_id_is_exactly_404(admin: httpx.Client) -> None:
    response = admin.post("/auth/tokens/tok_doesnotexist0000/revoke")
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "no token with id 'tok_doesnotexist0000'",
    }


def test_management_needs_a_bearer_admin_token(server: ServerProcess, admin: httpx.Client) -> None:
    reader = create(admin, scopes=["read", "write"])
    revoked_admin = create(admin, scopes=["admin"])
    admin.post(f"/auth/tokens/{revoked_admin['token_id']}/revoke").raise_for_status()
    routes = [
        ("POST", "/auth/tokens", {"name": "x", "scopes": ["read"]}),
        ("GET", "/auth/tokens", None),
        ("GET", f"/auth/tokens/{reader['token_id']}", None),
        ("POST", f"/auth/tokens/{reader['token_id']}/revoke", None),
        ("POST", f"/auth/tokens/{reader['token_id']}/extend", {"days": 1}),
        ("GET", f"/auth/tokens/{reader['token_id']}/audit", None),
        ("GET", "/auth/audit", None),
    ]
    cases = [
        ({}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": "Bearer not-a-token"}, 401),
        ({"Authorization": f"Bearer {revoked_admin['token']}"}, 401),
        ({"Authorization": f"Bearer {reader['token']}"}, 403),
    ]
    with httpx.Client(base_url=server.base_url) as client:
        for headers, status in cases:
            for method, path, body in routes:
                response = client.request(method, path, json=body, headers=headers)
                assert response.status_code == status, (headers, method, path, response.text)
                if status == 401:
                    assert response.headers["www-authenticate"].startswith("Bearer")
                assert reader["token"] not in response.text
    # Nothing was changed by any refused request.
    assert admin.get(f"/auth/tokens/{reader['token_id']}").json()["status"] == "active"


def test_a_token_with_the_admin_scope_can_manage(
    admin: httpx.Client, server: ServerProcess
) -> None:
    second_admin = create(admin, name="second admin", scopes=["admin"])
    with server.client(token=second_admin["token"]) as client:
        created = create(client, name="made by the second admin")
        audit = client.get(f"/auth/tokens/{created['token_id']}/audit").json()["items"]
    assert audit[0]["action"] == "create"
    assert audit[0]["actor_id"] == second_admin["token_id"]
    assert audit[0]["actor_name"] == "second admin"


def test_the_audit_trail_says_who_did_what_and_when(admin: httpx.Client) -> None:
    before = utcnow()
    created = create(admin, ttl_days=2)
    token_id = created["token_id"]
    admin.post(f"/auth/tokens/{token_id}/extend", json={"days": 3}).raise_for_status()
    admin.post(f"/auth/tokens/{token_id}/revoke").raise_for_status()
    trail = admin.get(f"/auth/tokens/{token_id}/audit")
    assert trail.status_code == 200
    entries = trail.json()["items"]
    assert [e["action"] for e in entries] == ["revoke", "extend", "create"]
    assert {e["token_id"] for e in entries} == {token_id}
    assert all(parse(e["at"]) >= before - timedelta(seconds=1) for e in entries)
    actor = {e["actor_id"] for e in entries}
    assert len(actor) == 1
    assert actor.pop().startswith("tok_")
    assert entries[2]["details"]["scopes"] == created["scopes"]
    assert entries[1]["details"]["expires_at"].endswith("Z")  # as every API time
    assert created["token"] not in trail.text
    everything = admin.get("/auth/audit", params={"limit": 3}).json()["items"]
    assert [e["id"] for e in everything] == [e["id"] for e in entries]


@pytest.mark.parametrize(
    "body",
    [
        {"scopes": ["read"]},
        {"name": "x"},
        {"name": "x", "scopes": []},
        {"name": "", "scopes": ["read"]},
        {"name": "x" * 101, "scopes": ["read"]},
        {"name": "bad\u0000name", "scopes": ["read"]},
        {"name": "x", "scopes": ["has space"]},
        {"name": "x", "scopes": ["nul\u0000"]},
        {"name": "x", "scopes": [""]},
        {"name": "x", "scopes": ["s" * 65]},
        {"name": "x", "scopes": "read"},
        {"name": "x", "scopes": ["read"], "ttl_days": 0},
        {"name": "x", "scopes": ["read"], "ttl_days": -1},
        {"name": "x", "scopes": ["read"], "ttl_days": "soon"},
        {"name": "x", "scopes": ["read"], "ttl_days": 10**9},
        {"name": "x", "scopes": ["read"], "ttl": 5},
        {"name": "x", "scopes": ["read"], "metadata": {"k": 1}},
        {"name": "x", "scopes": ["read"], "description": "d" * 1001},
        {"name": 5, "scopes": ["read"]},
    ],
)
def test_invalid_create_bodies_are_422_and_create_nothing(
    admin: httpx.Client, body: dict[str, object]
) -> None:
    before = len(admin.get("/auth/tokens?all=true").json()["items"])
    response = admin.post("/auth/tokens", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert response.json()["errors"]
    assert len(admin.get("/auth/tokens?all=true").json()["items"]) == before


def test_odd_but_valid_unicode_names_round_trip(admin: httpx.Client) -> None:
    created = create(admin, name="Zürich 🔑 日本", description="line one\nline two")
    record = admin.get(f"/auth/tokens/{created['token_id']}").json()
    assert record["name"] == "Zürich 🔑 日本"
    assert record["description"] == "line one\nline two"


@pytest.mark.parametrize("days", [0, -3, "many", None, 10**9])
def test_invalid_extend_bodies_are_422(admin: httpx.Client, days: object) -> None:
    token_id = create(admin, ttl_days=1)["token_id"]
    response = admin.post(f"/auth/tokens/{token_id}/extend", json={"days": days})
    assert response.status_code == 422


def test_malformed_json_is_a_422(admin: httpx.Client) -> None:
    for content in (b"{", b"null", b"[]", b'{"name": "x", "scopes": ["read"]', b"\xff\xfe"):
        response = admin.post(
            "/auth/tokens", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, content


def test_an_oversized_body_is_refused_early(admin: httpx.Client, anonymous: httpx.Client) -> None:
    ten_megabytes = b'{"token": "' + b"a" * (10 * 1024 * 1024) + b'"}'
    for client, path in ((anonymous, "/auth/validate"), (admin, "/auth/tokens")):
        response = client.post(
            path, content=ten_megabytes, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["error"] == "payload_too_large"


def test_an_oversized_chunked_body_is_refused(anonymous: httpx.Client) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"token": "'
        for _ in range(200):
            yield b"a" * 65536
        yield b'"}'

    response = anonymous.post(
        "/auth/validate", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_a_body_without_a_json_content_type_is_415_and_told_so(
    admin: httpx.Client, content_type: str | None
) -> None:
    # Not JSON's media type: what a web page may send cross-origin without a
    # preflight. Refused before anything reads it, and nothing is created.
    before = len(admin.get("/auth/tokens").json()["items"])
    headers = {} if content_type is None else {"content-type": content_type}
    for path in ("/auth/tokens", "/auth/validate"):
        response = admin.post(path, content=b'{"name": "x", "scopes": ["read"]}', headers=headers)
        assert response.status_code == 415
        assert response.json()["error"] == "unsupported_media_type"
        assert "Content-Type: application/json" in response.json()["detail"]
    assert len(admin.get("/auth/tokens").json()["items"]) == before


def test_a_raw_token_pasted_as_an_id_is_never_echoed(admin: httpx.Client) -> None:
    created = create(admin)
    for response in (
        admin.post(f"/auth/tokens/{created['token']}/revoke"),
        admin.get(f"/auth/tokens/{created['token']}"),
        admin.post(f"/auth/tokens/{created['token']}/extend", json={"days": 1}),
    ):
        assert response.status_code == 404
        assert created["token"] not in response.text
        assert created["token"][9:] not in response.text
        assert "not a token id" in response.json()["detail"]
    assert validate(admin, created["token"])["valid"] is True  # and nothing happened


def test_an_oversized_chunked_body_is_refused_on_management_too(admin: httpx.Client) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"name": "'
        for _ in range(200):
            yield b"a" * 65536
        yield b'", "scopes": ["read"]}'

    response = admin.post(
        "/auth/tokens", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_extending_past_the_ceiling_is_a_conflict_not_an_error(admin: httpx.Client) -> None:
    token_id = create(admin, ttl_days=36_000)["token_id"]
    response = admin.post(f"/auth/tokens/{token_id}/extend", json={"days": 36_500})
    assert response.status_code == 409
    assert "36500 days" in response.json()["detail"]
    assert admin.get(f"/auth/tokens/{token_id}").json()["status"] == "active"
