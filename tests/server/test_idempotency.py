"""A create with an ``Idempotency-Key`` mints once: a repeat answers the first token,
another body is refused, and concurrent duplicates (one process or two) make one token."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from amplify_auth_client import AsyncAuthClient, AuthClient, TokenAlreadyCreated
from amplify_auth_client.contract import (
    IDEMPOTENCY_WINDOW,
    create_fingerprint,
    hash_idempotency_key,
)
from amplify_auth_server.commands import CommandQueue, CreateToken, Idempotency, Writer
from amplify_auth_server.database import create_engine, migrate
from amplify_auth_server.errors import IdempotencyKeyReused
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.models import Actor, utcnow
from amplify_auth_server.store import TokenStore
from amplify_auth_server.tables import idempotency_keys, tokens
from tests.server.conftest import create
from tests.support.server import Backend, ServerProcess
from tests.support.services import TcpProxy

BODY: dict[str, Any] = {"name": "billing", "scopes": ["read"], "ttl_days": 30}


def post(admin: httpx.Client, key: str, body: dict[str, Any] = BODY) -> httpx.Response:
    return admin.post("/auth/tokens", json=body, headers={"Idempotency-Key": key})


def rows(backend: Backend, table: Any = tokens) -> int:
    """How many rows ``table`` holds, read from the database itself."""
    return asyncio.run(stored(backend, table))


async def stored(backend: Backend, table: Any = tokens) -> int:
    """:func:`rows`, from a test that runs in an event loop."""
    engine = create_engine(backend.store_url)
    try:
        return await count(engine, table)
    finally:
        await engine.dispose()


def test_a_repeat_answers_the_first_token_and_mints_nothing(
    backend: Backend, admin: httpx.Client
) -> None:
    first = post(admin, "create-billing-1")
    assert first.status_code == 201
    assert first.json()["token"] is not None
    assert "idempotent-replayed" not in first.headers
    before = rows(backend)
    audit = len(admin.get("/auth/audit").json()["items"])

    again = post(admin, "create-billing-1")

    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["cache-control"] == "no-store"
    replay = again.json()
    assert replay["token"] is None  # shown once, stored nowhere
    assert {k: v for k, v in replay.items() if k != "token"} == {
        k: v for k, v in first.json().items() if k != "token"
    }
    assert rows(backend) == before
    assert len(admin.get("/auth/audit").json()["items"]) == audit  # nothing happened


def test_the_same_key_with_another_body_is_refused(backend: Backend, admin: httpx.Client) -> None:
    assert post(admin, "create-billing-2").status_code == 201
    before = rows(backend)
    refused = post(admin, "create-billing-2", {**BODY, "ttl_days": 31})
    assert refused.status_code == 422
    assert refused.json()["error"] == "idempotency_key_reused"
    assert refused.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert "create-billing-2" not in refused.text
    assert rows(backend) == before


def test_the_same_body_in_another_form_is_the_same_body(admin: httpx.Client) -> None:
    first = post(admin, "create-billing-3").json()
    again = admin.post(
        "/auth/tokens",
        content=b'{"ttl_days":30,  "scopes":["read"], "description": null, "name":"billing"}',
        headers={"Idempotency-Key": "create-billing-3", "Content-Type": "application/json"},
    )
    assert again.status_code == 200
    assert again.json()["token_id"] == first["token_id"]


def test_keys_belong_to_the_admin_token_that_sent_them(
    server: ServerProcess, admin: httpx.Client
) -> None:
    other = create(admin, name="second admin", scopes=["admin"])
    with server.client(token=other["token"]) as second:
        mine = post(admin, "shared-key").json()
        theirs = post(second, "shared-key")
    assert theirs.status_code == 201
    assert theirs.json()["token_id"] != mine["token_id"]


@pytest.mark.parametrize("key", ["two words", "k" * 256, "", "tab\there"])
def test_a_malformed_key_is_refused_without_being_echoed(admin: httpx.Client, key: str) -> None:
    response = post(admin, key)
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert "Idempotency-Key must be 1 to 255 visible ASCII characters" in body["detail"]
    if key:
        assert key not in response.text


def test_without_a_key_every_create_mints(backend: Backend, admin: httpx.Client) -> None:
    before = rows(backend)
    create(admin, **BODY)
    create(admin, **BODY)
    assert rows(backend) == before + 2


@pytest.mark.anyio
async def test_concurrent_duplicates_mint_one_token(
    backend: Backend, server: ServerProcess
) -> None:
    before = await stored(backend)
    headers = {"Authorization": f"Bearer {server.admin_token}", "Idempotency-Key": "burst"}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        answers = await asyncio.gather(
            *(http.post("/auth/tokens", json=BODY, headers=headers) for _ in range(24))
        )
    assert sorted(a.status_code for a in answers) == [200] * 23 + [201]
    assert len({a.json()["token_id"] for a in answers}) == 1
    assert await stored(backend) == before + 1


def test_the_key_is_never_stored_nor_logged(backend: Backend, admin: httpx.Client) -> None:
    key = "customer-secret-7f3a9c"
    post(admin, key)
    post(admin, key)
    assert key not in admin_log(admin)

    async def stored() -> list[tuple[Any, ...]]:
        engine = create_engine(backend.store_url)
        try:
            async with engine.connect() as connection:
                result = await connection.execute(select(idempotency_keys))
                return [tuple(row) for row in result]
        finally:
            await engine.dispose()

    everything = repr(asyncio.run(stored()))
    assert key not in everything
    assert hash_idempotency_key(key) in everything


def admin_log(admin: httpx.Client) -> str:
    """The audit log as text, where a key would show if anything recorded it."""
    return admin.get("/auth/audit", params={"limit": 1000}).text


def test_a_key_older_than_the_window_creates_anew_and_is_pruned(
    backend: Backend, admin: httpx.Client
) -> None:
    first = post(admin, "old-key").json()

    async def age() -> None:
        engine = create_engine(backend.store_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    idempotency_keys.update().values(
                        created_at=utcnow() - IDEMPOTENCY_WINDOW - timedelta(minutes=1)
                    )
                )
        finally:
            await engine.dispose()

    asyncio.run(age())
    again = post(admin, "old-key")
    assert again.status_code == 201
    assert again.json()["token_id"] != first["token_id"]
    # Every row older than the window went; only the new one is left.
    assert rows(backend, idempotency_keys) == 1


def test_a_retry_after_a_lost_answer_mints_one_token(
    backend: Backend, server: ServerProcess
) -> None:
    proxy = TcpProxy(server.port, drop_answers=1)
    try:
        before = rows(backend)
        with (
            AuthClient(
                base_url=f"http://127.0.0.1:{proxy.port}", admin_token=server.admin_token
            ) as client,
            pytest.raises(TokenAlreadyCreated) as replayed,
        ):
            client.create_token("lost answer", ["read"])
        assert proxy.dropped == 1
        assert rows(backend) == before + 1
        with server.client() as admin:
            token = admin.get(f"/auth/tokens/{replayed.value.token_id}").json()
        assert token["name"] == "lost answer"
    finally:
        proxy.close()


@pytest.mark.anyio
async def test_an_async_retry_after_a_lost_answer_mints_one_token(
    backend: Backend, server: ServerProcess
) -> None:
    proxy = TcpProxy(server.port, drop_answers=1)
    try:
        before = await stored(backend)
        async with AsyncAuthClient(
            base_url=f"http://127.0.0.1:{proxy.port}", admin_token=server.admin_token
        ) as client:
            with pytest.raises(TokenAlreadyCreated):
                await client.create_token("lost answer, async", ["read"])
        assert proxy.dropped == 1
        assert await stored(backend) == before + 1
    finally:
        proxy.close()


def test_an_sdk_create_that_gets_its_answer_mints_once(
    backend: Backend, server: ServerProcess
) -> None:
    before = rows(backend)
    with AuthClient(base_url=server.base_url, admin_token=server.admin_token) as client:
        created = client.create_token("sdk", ["read"], idempotency_key="sdk-1")
        with pytest.raises(TokenAlreadyCreated) as replayed:
            client.create_token("sdk", ["read"], idempotency_key="sdk-1")
    assert replayed.value.token_id == created.token_id
    assert rows(backend) == before + 1


# -- the writer itself: duplicates in one batch, and two replicas ---------------


@pytest.fixture
def database(backend: Backend) -> str:
    return backend.store_url


def keyed(key: str, name: str = "grouped") -> CreateToken:
    return CreateToken(
        actor=Actor("tok_aaaaaaaaaaaaaaaa"),
        name=name,
        scopes=("read",),
        idempotency=Idempotency(
            key_hash=hash_idempotency_key(key),
            body_hash=create_fingerprint(name, ["read"], None, None, None),
        ),
    )


@pytest.mark.anyio
async def test_duplicates_in_one_batch_mint_once(database: str) -> None:
    engine = create_engine(database)
    try:
        await migrate(engine)
        writer = Writer(TokenStore(engine), propagation=None)
        before = await count(engine)
        outcomes = await writer.run([keyed("g"), keyed("g"), keyed("h"), keyed("g", "other")])
        first, second, third, fourth = outcomes
        assert not isinstance(first, BaseException)
        assert not isinstance(second, BaseException)
        assert not isinstance(third, BaseException)
        assert first.value.token is not None
        assert second.value.replayed
        assert second.value.record.id == first.value.record.id
        assert third.value.record.id != first.value.record.id
        assert isinstance(fourth, IdempotencyKeyReused)  # fails alone
        assert await count(engine) == before + 2
    finally:
        await engine.dispose()


@pytest.mark.anyio
async def test_a_queue_full_of_duplicates_mints_once(database: str) -> None:
    engine = create_engine(database)
    try:
        await migrate(engine)
        queue = CommandQueue(Writer(TokenStore(engine), propagation=None), Metrics(), batch_size=4)
        queue.start()
        before = await count(engine)
        minted = await asyncio.gather(*(queue.submit(keyed("q")) for _ in range(20)))
        await queue.stop()
        assert len({m.record.id for m in minted}) == 1
        assert sum(not m.replayed for m in minted) == 1
        assert await count(engine) == before + 1
    finally:
        await engine.dispose()


async def count(engine: Any, table: Any = tokens) -> int:
    async with engine.connect() as connection:
        result = await connection.execute(select(func.count()).select_from(table))
        return int(result.scalar_one())


@pytest.mark.anyio
@pytest.mark.postgres
@pytest.mark.redis
async def test_two_replicas_racing_with_one_key_mint_once(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    one, two = replicas
    headers = {"Authorization": f"Bearer {one.admin_token}", "Idempotency-Key": "race"}
    async with (
        httpx.AsyncClient(base_url=one.base_url, timeout=30) as first,
        httpx.AsyncClient(base_url=two.base_url, timeout=30) as second,
    ):
        answers = await asyncio.gather(
            *(
                client.post("/auth/tokens", json=BODY, headers=headers)
                for _ in range(8)
                for client in (first, second)
            )
        )
        listed = await first.get(
            "/auth/tokens",
            params={"name": "billing"},
            headers={"Authorization": headers["Authorization"]},
        )
    assert sorted(a.status_code for a in answers) == [200] * 15 + [201]
    assert len({a.json()["token_id"] for a in answers}) == 1
    assert len(listed.json()["items"]) == 1
