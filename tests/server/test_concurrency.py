"""Concurrent writes lose nothing and duplicate nothing; replicas agree."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from amplify_auth_client import generate_token
from tests.server.conftest import create, validate
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.services import fresh_database, redis_namespace


async def _gather(server: ServerProcess, calls: list[tuple[str, str, Any]]) -> list[httpx.Response]:
    # keepalive_expiry under uvicorn's 5 s keep-alive timeout, so that the
    # client never reuses a connection the server is closing.
    limits = httpx.Limits(max_connections=64, keepalive_expiry=2)
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    # At most as many in flight as connections: hundreds queued inside httpx's
    # pool cost the client time quadratic in the queue (it rescans it for each
    # free connection), which under load timed requests out before they left.
    in_flight = asyncio.Semaphore(64)
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=headers, limits=limits, timeout=60
    ) as client:

        async def call(method: str, path: str, body: Any) -> httpx.Response:
            async with in_flight:
                return await client.request(method, path, json=body)

        return await asyncio.gather(*(call(method, path, body) for method, path, body in calls))


def test_500_concurrent_creates_and_revokes_lose_and_duplicate_nothing(
    server: ServerProcess, admin: httpx.Client
) -> None:
    # Half the tokens exist before the storm; the storm then creates the other
    # half while revoking the first half, each revoke sent twice.
    first = asyncio.run(
        _gather(
            server,
            [
                ("POST", "/auth/tokens", {"name": f"first-{i}", "scopes": ["read"]})
                for i in range(250)
            ],
        )
    )
    assert [r.status_code for r in first] == [201] * 250
    first_ids = [r.json()["token_id"] for r in first]

    storm: list[tuple[str, str, Any]] = []
    for i in range(250):
        storm.append(("POST", "/auth/tokens", {"name": f"second-{i}", "scopes": ["write"]}))
        storm.append(("POST", f"/auth/tokens/{first_ids[i]}/revoke", None))
        storm.append(("POST", f"/auth/tokens/{first_ids[i]}/revoke", None))
    responses = asyncio.run(_gather(server, storm))
    assert Counter(r.status_code for r in responses) == {201: 250, 200: 500}
    second = [r.json() for r in responses if r.status_code == 201]

    created = [r.json() for r in first] + second
    assert len({c["token_id"] for c in created}) == 500
    assert len({c["token"] for c in created}) == 500

    page = admin.get("/auth/tokens?all=true&limit=1000").json()
    assert page["next_cursor"] is None
    listed = {r["token_id"]: r for r in page["items"]}
    for token_id in first_ids:
        assert listed[token_id]["status"] == "revoked"
    for item in second:
        assert listed[item["token_id"]]["status"] == "active"

    audit = admin.get("/auth/audit", params={"limit": 1000}).json()["items"]
    ours = {c["token_id"] for c in created}
    actions = Counter(e["action"] for e in audit if e["token_id"] in ours)
    assert actions == {"create": 500, "revoke": 250}

    for token_id, item in zip(first_ids, first, strict=True):
        assert validate(admin, item.json()["token"])["reason"] == "revoked", token_id
    for item in second[:50]:
        assert validate(admin, item["token"], "write")["valid"] is True


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two server processes on one PostgreSQL database and one Redis."""
    directory = tmp_path_factory.mktemp("replicas")
    with fresh_database() as url, redis_namespace() as namespace:
        backend = Backend("postgres", directory, url, namespace)
        admin_token = generate_token()
        # Each replica writes its own usage counts every USAGE_FLUSH_SECONDS
        # (documented as that late): with the default 5 s, one replica's flush
        # could land between the two reads that compare the replicas' records
        # whole. An hour keeps usage out of the comparison's way, not out of it.
        env = {"USAGE_FLUSH_SECONDS": "3600"}
        with (
            running_server(backend, env=env, admin_token=admin_token) as one,
            running_server(backend, env=env, admin_token=admin_token) as two,
        ):
            yield one, two


@pytest.mark.postgres
@pytest.mark.redis
def test_a_revoke_through_one_replica_is_seen_at_once_by_the_other(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    one, two = replicas
    with one.client() as first, two.client() as second:
        for _ in range(30):
            created = create(first)
            # The second replica now holds a positive answer in its local cache.
            assert validate(second, created["token"])["valid"] is True
            assert validate(second, created["token"])["valid"] is True
            first.post(f"/auth/tokens/{created['token_id']}/revoke").raise_for_status()
            assert validate(second, created["token"])["reason"] == "revoked"


@pytest.mark.postgres
@pytest.mark.redis
def test_racing_revoke_and_extend_on_two_replicas_end_in_one_consistent_state(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    one, two = replicas
    with one.client() as first, two.client() as second:
        tokens = [create(first, ttl_days=1) for _ in range(40)]
        for item in tokens:
            # Both replicas cache the positive answer before the race.
            assert validate(first, item["token"])["valid"] is True
            assert validate(second, item["token"])["valid"] is True

    async def race() -> list[tuple[httpx.Response, httpx.Response]]:
        headers = {"Authorization": f"Bearer {one.admin_token}"}
        async with (
            httpx.AsyncClient(base_url=one.base_url, headers=headers) as a,
            httpx.AsyncClient(base_url=two.base_url, headers=headers) as b,
        ):
            pairs = []
            for item in tokens:
                token_id = item["token_id"]
                pairs.append(
                    asyncio.gather(
                        a.post(f"/auth/tokens/{token_id}/revoke"),
                        b.post(f"/auth/tokens/{token_id}/extend", json={"days": 7}),
                        b.post(f"/auth/tokens/{token_id}/extend", json={"days": 7}),
                    )
                )
            results = await asyncio.gather(*pairs)
        return [(r[0], r[1]) for r in results] + [(r[0], r[2]) for r in results]

    outcomes = asyncio.run(race())
    for revoke, extend in outcomes:
        assert revoke.status_code == 200, revoke.text
        assert extend.status_code in (200, 409), extend.text
    with one.client() as first, two.client() as second:
        for item in tokens:
            token_id = item["token_id"]
            a = first.get(f"/auth/tokens/{token_id}").json()
            b = second.get(f"/auth/tokens/{token_id}").json()
            assert a == b
            assert a["status"] == "revoked"
            # Every replica's cache agrees with the database.
            assert validate(first, item["token"])["reason"] == "revoked"
            assert validate(second, item["token"])["reason"] == "revoked"
            trail = first.get(f"/auth/tokens/{token_id}/audit").json()["items"]
            actions = [e["action"] for e in reversed(trail)]
            # One serial order: create, any extends that won the race, one revoke.
            assert actions[0] == "create"
            assert actions.count("revoke") == 1
            assert actions[-1] == "revoke"
            assert set(actions[1:-1]) <= {"extend"}
