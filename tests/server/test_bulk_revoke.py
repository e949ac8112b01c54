"""Bulk revocation: many tokens in one call, by id or by filter, each revoked everywhere when
it returns, each with its audit entry and its event."""

from __future__ import annotations

import httpx
import pytest

from amplify_auth_client import AuthClient, generate_token
from tests.server.conftest import create, validate
from tests.support.events import EventStream
from tests.support.server import ServerProcess
from tests.support.waiting import wait_for


def test_by_id_every_id_is_answered(admin: httpx.Client) -> None:
    active = [create(admin, name="bulk-id")["token_id"] for _ in range(3)]
    before = create(admin, name="bulk-id")["token_id"]
    admin.post(f"/auth/tokens/{before}/revoke").raise_for_status()
    unknown = "tok_zzzzzzzzzzzzzzzz"
    response = admin.post(
        "/auth/tokens/revoke", json={"token_ids": [active[0], before, unknown, *active[1:]]}
    )
    assert response.status_code == 200
    assert response.json() == {
        "revoked_count": 3,
        "revoked": active,
        "already_revoked": [before],
        "not_found": [unknown],
    }
    for token_id in active:
        assert admin.get(f"/auth/tokens/{token_id}").json()["status"] == "revoked"
        trail = admin.get(f"/auth/tokens/{token_id}/audit").json()["items"]
        assert [entry["action"] for entry in trail] == ["revoke", "create"]
    # Again: idempotent.
    again = admin.post("/auth/tokens/revoke", json={"token_ids": active}).json()
    assert (again["revoked"], again["already_revoked"]) == ([], active)


def test_a_revoked_token_is_refused_the_moment_the_call_returns(
    server: ServerProcess, admin: httpx.Client
) -> None:
    created = [create(admin, name="bulk-now") for _ in range(20)]
    for item in created:
        assert validate(admin, item["token"])["valid"] is True  # cached by the server
    with AuthClient(server.base_url, cache_ttl=600) as sdk:
        for item in created:
            assert sdk.validate(item["token"]).valid  # cached by the SDK too
        wait_for(lambda: sdk.cache_stats().subscribed)
        with EventStream(server.base_url) as stream:
            stream.until("ready")
            ids = [item["token_id"] for item in created]
            done = admin.post("/auth/tokens/revoke", json={"token_ids": ids}).json()
            assert done["revoked_count"] == 20
            # Never valid after the call returned, whatever answers.
            for item in created:
                assert validate(admin, item["token"])["reason"] == "revoked"
            events = [stream.until("revoked") for _ in range(20)]
            assert len({event.data["token_hash"] for event in events}) == 20
            # A subscribed SDK evicts every one of them.
            wait_for(lambda: not any(sdk.validate(item["token"]).valid for item in created))


def test_by_filter_revokes_every_matching_active_token_and_no_other(admin: httpx.Client) -> None:
    doomed = [create(admin, name=f"Compromised-{i}", scopes=["orders:write"]) for i in range(30)]
    spared = [create(admin, name=f"compromised-{i}", scopes=["orders:read"]) for i in range(5)]
    other = create(admin, name="elsewhere", scopes=["orders:write"])
    body = {"filter": {"name": "compromised-", "scope": "orders:write"}}
    dry = admin.post("/auth/tokens/revoke", json={**body, "dry_run": True}).json()
    assert dry["revoked_count"] == 30
    assert validate(admin, doomed[0]["token"])["valid"] is True  # a dry run revokes nothing
    done = admin.post("/auth/tokens/revoke", json=body).json()
    assert done == {
        "revoked_count": 30,
        "revoked": None,
        "already_revoked": None,
        "not_found": None,
    }
    assert all(validate(admin, d["token"])["reason"] == "revoked" for d in doomed)
    assert all(validate(admin, s["token"])["valid"] for s in [*spared, other])
    audit = admin.get("/auth/audit", params={"action": "revoke", "limit": 100}).json()["items"]
    assert {d["token_id"] for d in doomed} <= {entry["token_id"] for entry in audit}
    # Nothing active matches any more.
    assert admin.post("/auth/tokens/revoke", json=body).json()["revoked_count"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"dry_run": True},
        {"token_ids": []},
        {"token_ids": ["tok_0123456789abcdef"], "filter": {"name": "x"}},
        {"token_ids": ["tok_0123456789abcdef", "tok_0123456789abcdef"]},
        {"token_ids": ["tok_0123456789abcdef"], "dry_run": True},
        {"token_ids": ["tok_0123456789abcdef"] * 1001},
        {"filter": {}},
        {"filter": {"name": None}},
        {"filter": {"name": ""}},
        {"filter": {"scope": "no spaces"}},
        {"filter": {"expires_within_days": -1}},
    ],
    ids=[
        "nothing",
        "only dry_run",
        "no ids",
        "ids and a filter",
        "an id twice",
        "dry_run with ids",
        "1001 ids",
        "an empty filter",
        "a null filter",
        "empty name",
        "bad scope",
        "negative days",
    ],
)
def test_a_bulk_revocation_says_what_it_revokes_or_is_refused(
    admin: httpx.Client, body: dict[str, object]
) -> None:
    active = create(admin, name="bystander")
    response = admin.post("/auth/tokens/revoke", json=body)
    assert response.status_code == 422
    assert validate(admin, active["token"])["valid"] is True


def test_a_raw_token_among_the_ids_is_refused_and_not_echoed(admin: httpx.Client) -> None:
    token = create(admin)["token"]
    response = admin.post("/auth/tokens/revoke", json={"token_ids": [token]})
    assert response.status_code == 422
    assert token not in response.text
    assert validate(admin, token)["valid"] is True


def test_the_sdk_and_its_fake_revoke_in_bulk_alike(server: ServerProcess) -> None:
    from amplify_auth_client.testing import FakeAuthServer

    fake = FakeAuthServer()
    for auth in (AuthClient(server.base_url, admin_token=server.admin_token), fake.client()):
        with auth:
            tokens = [auth.create_token(f"sdk-bulk-{i}", ["x"]) for i in range(3)]
            ids = [t.token_id for t in tokens]
            outcome = auth.revoke_tokens([*ids[:2], "tok_zzzzzzzzzzzzzzzz"])
            assert outcome.revoked == tuple(ids[:2])
            assert outcome.not_found == ("tok_zzzzzzzzzzzzzzzz",)
            assert auth.revoke_where(name="sdk-bulk-", dry_run=True) == 1
            assert auth.revoke_where(name="sdk-bulk-") == 1
            assert not any(auth.validate(t.token) for t in tokens)
            assert auth.validate(generate_token()).reason == "unknown"
