"""POST /auth/validate answers every kind of token correctly, on both backends."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import httpx
import pytest

from amplify_auth_client import generate_token
from amplify_auth_server.models import utcnow
from amplify_auth_server.schemas import ValidateResponse
from tests.conftest import insert_token
from tests.server.conftest import create, validate
from tests.support.server import Backend


def test_a_valid_token_returns_its_identity_and_scopes(admin: httpx.Client) -> None:
    created = create(admin, name="reader", scopes=["read", "write"], ttl_days=30)
    answer = validate(admin, created["token"])
    assert answer == {
        "valid": True,
        "scopes": ["read", "write"],
        "token_id": created["token_id"],
        "name": "reader",
        "owner": None,
        "reason": None,
        "missing_scopes": [],
        "expires_at": created["expires_at"],
        "replaced_by": None,
    }
    ValidateResponse.model_validate(answer)


def test_every_required_scope_must_be_held(admin: httpx.Client) -> None:
    created = create(admin, scopes=["read", "write", "delete"])
    assert validate(admin, created["token"], "read", "write")["valid"] is True
    answer = validate(admin, created["token"], "read", "admin", "billing")
    assert answer["valid"] is False
    assert answer["reason"] == "insufficient_scope"
    assert answer["missing_scopes"] == ["admin", "billing"]
    # The token's own identity still comes back, so the caller can say who was refused.
    assert answer["scopes"] == ["read", "write", "delete"]
    assert answer["token_id"] == created["token_id"]
    assert answer["name"] == created["name"]


def test_each_request_is_judged_against_its_own_scopes(admin: httpx.Client) -> None:
    token = create(admin, scopes=["a", "b"])["token"]
    results = [
        validate(admin, token, *scopes)["valid"]
        for scopes in ([], ["a"], ["b"], ["a", "b"], ["c"], ["a", "c"], ["a"])
    ]
    assert results == [True, True, True, True, False, False, True]


def test_an_unknown_token_is_unknown(anonymous: httpx.Client) -> None:
    answer = validate(anonymous, generate_token())
    assert answer["valid"] is False
    assert answer["reason"] == "unknown"
    assert answer["token_id"] is None
    assert answer["scopes"] == []


@pytest.mark.parametrize(
    "token",
    [
        "",
        "amp_live_",
        "not-a-token",
        "amp_test_" + "A" * 43,
        "amp_live_" + "A" * 42,
        "amp_live_" + "A" * 44,
        "amp_live_" + "é" * 43,
        "amp_live_" + "\u0000" * 43,
        "amp_live_" + "🔑" * 43,
        "x" * 1024,
    ],
    ids=[
        "empty",
        "prefix",
        "words",
        "test-prefix",
        "short",
        "long",
        "accents",
        "nul",
        "emoji",
        "max-length",
    ],
)
def test_malformed_tokens_are_answered_malformed(anonymous: httpx.Client, token: str) -> None:
    response = anonymous.post(
        "/auth/validate",
        content=json.dumps({"token": token}).encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["reason"] == "malformed"
    assert response.json()["valid"] is False


def test_an_unpaired_surrogate_is_invalid_json(anonymous: httpx.Client) -> None:
    response = anonymous.post(
        "/auth/validate",
        content=b'{"token": "amp_live_\\ud800' + b"A" * 42 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "json_invalid"


def test_a_mistyped_token_fails_its_checksum(admin: httpx.Client) -> None:
    token = create(admin)["token"]
    position = 20
    typo = token[:position] + ("B" if token[position] != "B" else "C") + token[position + 1 :]
    assert validate(admin, typo)["reason"] == "malformed"
    assert validate(admin, token)["valid"] is True


def test_a_revoked_token_is_revoked(admin: httpx.Client) -> None:
    created = create(admin)
    assert validate(admin, created["token"])["valid"] is True
    assert admin.post(f"/auth/tokens/{created['token_id']}/revoke").status_code == 200
    answer = validate(admin, created["token"])
    assert (answer["valid"], answer["reason"]) == (False, "revoked")
    assert answer["token_id"] == created["token_id"]


def test_an_expired_token_is_expired(backend: Backend, anonymous: httpx.Client) -> None:
    raw, token_id = insert_token(backend, expires_at=utcnow() - timedelta(seconds=1))
    answer = validate(anonymous, raw)
    assert (answer["valid"], answer["reason"], answer["token_id"]) == (False, "expired", token_id)


def test_a_cached_token_expires_on_time(backend: Backend, anonymous: httpx.Client) -> None:
    """The cache holds the token's expiry, so a cached entry never outlives the token."""
    expires_at = utcnow() + timedelta(seconds=1.5)
    raw, _ = insert_token(backend, expires_at=expires_at)
    assert validate(anonymous, raw)["valid"] is True  # now cached, for far longer than 1.5 s
    # Waiting for wall-clock time to pass is the behaviour under test.
    time.sleep(max(0.0, (expires_at - utcnow()).total_seconds()) + 0.05)
    assert validate(anonymous, raw)["reason"] == "expired"


def test_required_scopes_must_be_a_list_of_strings(anonymous: httpx.Client) -> None:
    for body in (
        {"token": generate_token(), "required_scopes": "read"},
        {"token": generate_token(), "required_scopes": [1, 2]},
        {"token": 12},
        {},
        [],
    ):
        response = anonymous.post("/auth/validate", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"] == "invalid_request"


def test_a_malformed_body_is_a_422_that_never_echoes_the_token(anonymous: httpx.Client) -> None:
    token = generate_token()
    for content in (
        b"{not json",
        b'{"token": "' + token.encode() + b'", "required_scopes": "x"',
        b'{"token": "' + token.encode() + b'" + "x" * 2000}',
        ('{"token": "%s"}' % (token * 30)).encode(),
    ):
        response = anonymous.post(
            "/auth/validate", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert token not in response.text
        assert "input" not in response.json()["errors"][0]
