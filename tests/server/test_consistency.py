"""What the caches may serve: a revoke is seen at once, garbage is cached briefly,
and no tier holds a raw token."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from amplify_auth_client import generate_token, hash_token
from tests.conftest import insert_token
from tests.server.conftest import create, validate
from tests.support.server import Backend, ServerProcess, running_server


def metric(client: httpx.Client, name: str) -> float:
    """The sum of a counter's samples in the Prometheus text."""
    text = client.get("/metrics").text
    return sum(float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def test_a_validation_after_revoke_returns_is_never_valid(admin: httpx.Client) -> None:
    for _ in range(25):
        created = create(admin)
        # Warm every cache tier with the positive answer first.
        assert validate(admin, created["token"])["valid"] is True
        assert validate(admin, created["token"])["valid"] is True
        admin.post(f"/auth/tokens/{created['token_id']}/revoke").raise_for_status()
        assert validate(admin, created["token"])["reason"] == "revoked"


def test_a_burst_of_one_unknown_token_reaches_the_database_once(
    server: ServerProcess, admin: httpx.Client
) -> None:
    token = generate_token()
    before = metric(admin, "amplify_auth_database_lookups_total")

    async def burst() -> list[str]:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            responses = await asyncio.gather(
                *(client.post("/auth/validate", json={"token": token}) for _ in range(100))
            )
        return [r.json()["reason"] for r in responses]

    assert asyncio.run(burst()) == ["unknown"] * 100
    for _ in range(100):
        assert validate(admin, token)["reason"] == "unknown"
    assert metric(admin, "amplify_auth_database_lookups_total") - before == 1


def test_malformed_tokens_never_reach_a_cache_or_the_database(admin: httpx.Client) -> None:
    lookups = metric(admin, "amplify_auth_database_lookups_total")
    misses = metric(admin, "amplify_auth_cache_requests_total")
    for i in range(50):
        assert validate(admin, f"amp_live_garbage{i}")["reason"] == "malformed"
    assert metric(admin, "amplify_auth_database_lookups_total") == lookups
    assert metric(admin, "amplify_auth_cache_requests_total") == misses


@pytest.fixture(scope="module")
def short_negative_cache(backend: Backend) -> Iterator[ServerProcess]:
    with running_server(backend, env={"NEGATIVE_CACHE_TTL": "1"}) as server:
        yield server


def test_unknown_tokens_are_cached_briefly(
    backend: Backend, short_negative_cache: ServerProcess
) -> None:
    raw = generate_token()
    with short_negative_cache.client(token=None) as client:
        assert validate(client, raw)["reason"] == "unknown"
        insert_token(backend, raw=raw)
        # Still the cached answer: the flood of garbage is not allowed through...
        assert validate(client, raw)["reason"] == "unknown"
        cached_at = time.monotonic()
        # ...but only for NEGATIVE_CACHE_TTL. Waiting for that time is the behaviour.
        time.sleep(max(0.0, 1.1 - (time.monotonic() - cached_at)))
        assert validate(client, raw)["valid"] is True


def test_no_tier_stores_a_raw_token(backend: Backend, admin: httpx.Client) -> None:
    created = [create(admin, name=f"secret-{i}") for i in range(5)]
    for item in created:
        validate(admin, item["token"])
        admin.post(f"/auth/tokens/{item['token_id']}/revoke").raise_for_status()
    validate(admin, generate_token())

    if backend.database_url is None:
        stored = b"".join(p.read_bytes() for p in backend.directory.glob("amplify_auth.db*"))
    else:
        stored = subprocess.run(
            ["pg_dump", "--data-only", backend.database_url],
            check=True,
            capture_output=True,
        ).stdout
    for item in created:
        assert item["token"].encode() not in stored
        assert item["token"][9:].encode() not in stored  # not even without the prefix
        assert hash_token(item["token"]).encode() in stored  # the hash is what is kept

    if backend.redis is not None:
        keys, values = backend.redis.keys(), backend.redis.values()
        assert keys
        assert values
        everything = b"".join(keys + values)
        for item in created:
            assert item["token"].encode() not in everything
            assert item["token"][9:].encode() not in everything
        assert any(hash_token(item["token"]).encode() in everything for item in created)
