"""Usage: every validation answered valid counts once, whichever tier answered, on
every replica; SDK reports add theirs; forged reports change nothing they should not."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Final

import httpx
import pytest
from sqlalchemy import update

from amplify_auth_client import generate_token, hash_token
from amplify_auth_client.contract import MAX_USAGE_COUNT, MAX_USAGE_HITS
from amplify_auth_server.models import utcnow
from tests.server.conftest import create, validate
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.waiting import wait_for

#: Flushes close together, so that a test waits a fraction of a second.
FAST_FLUSH: Final = {"USAGE_FLUSH_SECONDS": "0.2"}


@pytest.fixture(scope="module")
def counting(backend: Backend) -> Iterator[ServerProcess]:
    with running_server(backend, env=FAST_FLUSH) as process:
        yield process


def _info(admin: httpx.Client, token_id: str) -> dict[str, Any]:
    response = admin.get(f"/auth/tokens/{token_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _total(admin: httpx.Client, token_id: str) -> int:
    return sum(day["count"] for day in _info(admin, token_id)["usage"])


def _wait_for_total(admin: httpx.Client, token_id: str, expected: int) -> None:
    wait_for(lambda: _total(admin, token_id) >= expected)
    assert _total(admin, token_id) == expected


def _report(client: httpx.Client, *hits: tuple[str, int]) -> httpx.Response:
    body = {"hits": [{"token_hash": h, "count": n} for h, n in hits]}
    return client.post("/auth/usage", json=body)


def test_a_new_token_was_never_used(counting: ServerProcess) -> None:
    with counting.client() as admin:
        token = create(admin)
        info = _info(admin, token["token_id"])
        listed = admin.get("/auth/tokens").json()["items"]
    assert info["last_used_at"] is None
    assert info["usage"] == []
    assert {t["token_id"]: t["last_used_at"] for t in listed}[token["token_id"]] is None


def test_every_valid_validation_counts_once_whatever_tier_answers(
    counting: ServerProcess,
) -> None:
    with counting.client() as admin, counting.client(token=None) as service:
        token = create(admin, scopes=["read"])
        revoked = create(admin)
        admin.post(f"/auth/tokens/{revoked['token_id']}/revoke").raise_for_status()
        before = utcnow()
        # The first is a miss (the database), the rest hits (the caches).
        for _ in range(5):
            assert validate(service, token["token"])["valid"]
        # A scope refusal of a good token is a use of it too.
        assert validate(service, token["token"], "write")["reason"] == "insufficient_scope"
        assert validate(service, revoked["token"])["reason"] == "revoked"
        assert validate(service, generate_token())["reason"] == "unknown"
        _wait_for_total(admin, token["token_id"], 6)
        info = _info(admin, token["token_id"])
        assert _total(admin, revoked["token_id"]) == 0
        assert _info(admin, revoked["token_id"])["last_used_at"] is None
    last_used = datetime.fromisoformat(info["last_used_at"])
    assert before <= last_used <= utcnow()
    assert info["usage"] == [{"day": last_used.date().isoformat(), "count": 6}]


def test_an_admin_token_is_used_by_management_calls(counting: ServerProcess) -> None:
    with counting.client() as admin:
        manager = create(admin, scopes=["admin"])
        with counting.client(token=manager["token"]) as delegated:
            delegated.get("/auth/tokens").raise_for_status()
        _wait_for_total(admin, manager["token_id"], 1)


def test_reports_add_the_sdk_hits_of_valid_tokens_only(counting: ServerProcess) -> None:
    with counting.client() as admin, counting.client(token=None) as service:
        token = create(admin)
        revoked = create(admin)
        admin.post(f"/auth/tokens/{revoked['token_id']}/revoke").raise_for_status()
        before = utcnow()
        response = _report(
            service,
            (hash_token(token["token"]), 40),
            (hash_token(revoked["token"]), 7),
            (hash_token(generate_token()), 9),
        )
        assert response.status_code == 204, response.text
        _wait_for_total(admin, token["token_id"], 40)
        last_used = datetime.fromisoformat(_info(admin, token["token_id"])["last_used_at"])
        assert _total(admin, revoked["token_id"]) == 0
    # The server's own clock: the report's time, never a time the reporter chose.
    assert before <= last_used <= utcnow()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"hits": None},
        {"hits": [{"token_hash": "ab" * 32}]},
        {"hits": [{"token_hash": "AB" * 32, "count": 1}]},
        {"hits": [{"token_hash": "ab" * 31, "count": 1}]},
        {"hits": [{"token_hash": "ab" * 32, "count": 0}]},
        {"hits": [{"token_hash": "ab" * 32, "count": -5}]},
        {"hits": [{"token_hash": "ab" * 32, "count": "5"}]},
        {"hits": [{"token_hash": "ab" * 32, "count": MAX_USAGE_COUNT + 1}]},
        {"hits": [{"token_hash": "ab" * 32, "count": 1, "at": "2099-01-01T00:00:00Z"}]},
        {"hits": [{"token_hash": "ab" * 32, "count": 1}] * (MAX_USAGE_HITS + 1)},
        {"hits": [{"token": generate_token(), "count": 1}]},
    ],
    ids=[
        "empty",
        "no-hits",
        "no-count",
        "upper-case-hash",
        "short-hash",
        "zero-count",
        "negative-count",
        "count-as-text",
        "count-over-cap",
        "unknown-field",
        "too-many-hits",
        "raw-token-instead-of-hash",
    ],
)
def test_a_malformed_report_is_a_422(counting: ServerProcess, body: dict[str, Any]) -> None:
    with counting.client(token=None) as service:
        response = service.post("/auth/usage", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert "amp_live_" not in response.text


def test_filters_tell_used_from_unused_and_never_used_is_unused(
    counting: ServerProcess, backend: Backend
) -> None:
    with counting.client() as admin, counting.client(token=None) as service:
        owner = f"usage-{generate_token()[-6:].lower()}"
        fresh = create(admin, owner=owner, name="fresh")
        stale = create(admin, owner=owner, name="stale")
        never = create(admin, owner=owner, name="never")
        validate(service, fresh["token"])
        validate(service, stale["token"])
        _wait_for_total(admin, stale["token_id"], 1)
        _backdate(backend, stale["token_id"], utcnow() - timedelta(days=100))

        def names(**params: Any) -> set[str]:
            response = admin.get("/auth/tokens", params={"owner": owner, **params})
            assert response.status_code == 200, response.text
            return {t["name"] for t in response.json()["items"]}

        assert names(unused_for_days=90) == {"stale", "never"}
        assert names(used_within_days=7) == {"fresh"}
        assert names(used_within_days=365) == {"fresh", "stale"}
        assert names(unused_for_days=365) == {"never"}
        assert admin.get("/auth/tokens", params={"unused_for_days": 0}).status_code == 422
        dry = admin.post(
            "/auth/tokens/revoke",
            json={"filter": {"owner": owner, "unused_for_days": 90}, "dry_run": True},
        )
        assert dry.json()["revoked_count"] == 2, dry.text
        done = admin.post(
            "/auth/tokens/revoke", json={"filter": {"owner": owner, "unused_for_days": 90}}
        )
        assert done.json()["revoked_count"] == 2, done.text
        assert names() == {"fresh"}
        assert never["token_id"] not in {
            t["token_id"] for t in admin.get("/auth/tokens").json()["items"]
        }


def test_a_cursor_is_bound_to_the_usage_filters(counting: ServerProcess) -> None:
    with counting.client() as admin:
        for _ in range(3):
            create(admin, name="paged")
        first = admin.get("/auth/tokens", params={"limit": 1, "unused_for_days": 30}).json()
        assert first["next_cursor"] is not None
        other = admin.get(
            "/auth/tokens",
            params={"limit": 1, "unused_for_days": 31, "cursor": first["next_cursor"]},
        )
    assert other.status_code == 422, other.text


def _backdate(backend: Backend, token_id: str, at: datetime) -> None:
    """Move a token's last use into the past, as if the days had gone by."""
    from amplify_auth_server.database import create_engine
    from amplify_auth_server.tables import tokens

    async def write() -> None:
        engine = create_engine(backend.store_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    update(tokens).where(tokens.c.id == token_id).values(last_used_at=at)
                )
        finally:
            await engine.dispose()

    asyncio.run(write())


def test_counts_held_at_shutdown_are_written(backend: Backend) -> None:
    # A flush interval no test waits out: only the shut-down's flush writes.
    with running_server(backend, env={"USAGE_FLUSH_SECONDS": "3600"}) as process:
        with process.client() as admin, process.client(token=None) as service:
            token = create(admin)
            for _ in range(3):
                validate(service, token["token"])
        process.stop()
        process.start()
        with process.client() as admin:
            assert _total(admin, token["token_id"]) == 3


def test_counting_off_counts_nothing(backend: Backend) -> None:
    with running_server(backend, env={**FAST_FLUSH, "USAGE_COUNTING": "false"}) as process:
        with process.client() as admin, process.client(token=None) as service:
            token = create(admin)
            validate(service, token["token"])
            assert _report(service, (hash_token(token["token"]), 5)).status_code == 204
        process.stop()
        process.start()
        with process.client() as admin:
            assert _info(admin, token["token_id"])["last_used_at"] is None
            assert _total(admin, token["token_id"]) == 0


def test_two_replicas_counts_add_up(replicas: tuple[ServerProcess, ServerProcess]) -> None:
    one, two = replicas
    with one.client() as admin, one.client(token=None) as a, two.client(token=None) as b:
        token = create(admin)
        for _ in range(4):
            validate(a, token["token"])
        for _ in range(3):
            validate(b, token["token"])
        assert _report(b, (hash_token(token["token"]), 10)).status_code == 204
        # The replicas' flushes are their own (every 5 s by default).
        wait_for(lambda: _total(admin, token["token_id"]) >= 17, timeout=20)
        assert _total(admin, token["token_id"]) == 17
