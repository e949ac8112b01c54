"""Rotation, on both backends: a successor like its predecessor, the old token valid to
the second of its grace and then refused as expired, 409s, audit, events, idempotency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from amplify_auth_client import hash_token
from amplify_auth_client.contract import IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER
from amplify_auth_server import models
from amplify_auth_server.deps import Services
from amplify_auth_server.models import utcnow
from tests.conftest import insert_token
from tests.server.conftest import create, in_process, validate
from tests.support.events import EventStream
from tests.support.server import Backend, ServerProcess


def rotate(admin: httpx.Client, token_id: str, **body: Any) -> httpx.Response:
    return admin.post(f"/auth/tokens/{token_id}/rotate", json=body)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


# -- the clock, controlled: an in-process app on each backend -----------------------


@dataclass
class Clock:
    """The server's wall clock (``models.wall_time``), moved only by the test."""

    now: float

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    # A whole second, so that times written with microseconds compare exactly.
    clock = Clock(float(int(models.wall_time())))
    monkeypatch.setattr(models, "wall_time", clock)
    return clock


@pytest.fixture
async def app(backend: Backend) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    async with in_process(backend) as parts:
        yield parts


@pytest.fixture
def app_client(app: tuple[httpx.AsyncClient, Services]) -> httpx.AsyncClient:
    return app[0]


async def _validate(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.post("/auth/validate", json={"token": token})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.mark.anyio
async def test_the_grace_is_honoured_to_the_second(
    app_client: httpx.AsyncClient, clock: Clock
) -> None:
    made = await app_client.post(
        "/auth/tokens",
        json={"name": "svc", "scopes": ["read", "write"], "ttl_days": 10, "owner": "payments",
              "description": "the payments worker", "metadata": {"team": "p"}},
    )  # fmt: skip
    old = made.json()
    assert (await _validate(app_client, old["token"]))["replaced_by"] is None  # cached, too
    clock.now += 3600  # an hour into its life
    rotated = await app_client.post(
        f"/auth/tokens/{old['token_id']}/rotate", json={"grace_seconds": 60}
    )
    assert rotated.status_code == 201, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    new = rotated.json()
    rotated_at = clock.now
    # The same token in all but its secret and its id; the same lifetime, from now.
    for field in ("name", "scopes", "owner", "description", "metadata"):
        assert new[field] == old[field], field
    assert new["token"] != old["token"]
    assert _time(new["expires_at"]).timestamp() == rotated_at + 10 * 86400
    assert new["rotated_from"] == old["token_id"]
    assert new["previous"]["replaced_by"] == new["token_id"]
    assert _time(new["previous"]["expires_at"]).timestamp() == rotated_at + 60

    clock.now = rotated_at + 59.999
    answer = await _validate(app_client, old["token"])
    assert answer["valid"] is True
    assert answer["replaced_by"] == new["token_id"]
    clock.now = rotated_at + 60
    answer = await _validate(app_client, old["token"])
    assert (answer["valid"], answer["reason"]) == (False, "expired")
    fresh = await _validate(app_client, new["token"])
    assert (fresh["valid"], fresh["replaced_by"]) == (True, None)
    # Expired now: nothing left to rotate.
    again = await app_client.post(f"/auth/tokens/{old['token_id']}/rotate", json={})
    assert again.status_code == 409


@pytest.mark.anyio
async def test_an_own_expiry_sooner_than_the_grace_is_kept(
    app_client: httpx.AsyncClient, clock: Clock
) -> None:
    old = (
        await app_client.post("/auth/tokens", json={"name": "s", "scopes": ["r"], "ttl_days": 1})
    ).json()
    clock.now += 86400 - 30  # 30 seconds left
    new = (
        await app_client.post(
            f"/auth/tokens/{old['token_id']}/rotate", json={"grace_seconds": 3600}
        )
    ).json()
    assert new["previous"]["expires_at"] == old["expires_at"]
    assert _time(new["expires_at"]).timestamp() == clock.now + 86400
    clock.now += 30
    assert (await _validate(app_client, old["token"]))["reason"] == "expired"


# -- real server processes -----------------------------------------------------------


def test_a_token_that_never_expires_is_replaced_by_one_that_never_expires(
    admin: httpx.Client,
) -> None:
    old = create(admin, name="forever", scopes=["read"])
    before = utcnow()
    response = rotate(admin, old["token_id"], grace_seconds=120)
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["expires_at"] is None
    deadline = _time(new["previous"]["expires_at"])
    assert before + timedelta(seconds=120) <= deadline <= utcnow() + timedelta(seconds=120)
    assert new["previous"]["status"] == "active"


def test_the_default_grace_is_a_day(admin: httpx.Client) -> None:
    old = create(admin, name="default", scopes=["read"])
    new = rotate(admin, old["token_id"]).json()
    left = _time(new["previous"]["expires_at"]) - utcnow()
    assert timedelta(hours=23, minutes=59) < left <= timedelta(days=1)


def test_a_grace_of_zero_revokes_the_old_token_at_once(
    admin: httpx.Client, anonymous: httpx.Client
) -> None:
    old = create(admin, name="now", scopes=["read"], ttl_days=5)
    assert validate(anonymous, old["token"])["valid"]  # cached in every tier
    new = rotate(admin, old["token_id"], grace_seconds=0).json()
    assert new["previous"]["status"] == "revoked"
    assert new["previous"]["expires_at"] == old["expires_at"]
    answer = validate(anonymous, old["token"])
    assert (answer["valid"], answer["reason"]) == (False, "revoked")
    assert validate(anonymous, new["token"])["valid"]


def test_records_name_each_other(admin: httpx.Client, anonymous: httpx.Client) -> None:
    old = create(admin, name="pair", scopes=["read"], ttl_days=3)
    new = rotate(admin, old["token_id"], grace_seconds=600, finish_when_idle_seconds=300).json()
    info_old = admin.get(f"/auth/tokens/{old['token_id']}").json()
    info_new = admin.get(f"/auth/tokens/{new['token_id']}").json()
    assert info_old["replaced_by"] == new["token_id"]
    assert info_old["rotated_from"] is None
    assert info_old["finish_when_idle_seconds"] == 300
    assert info_new["rotated_from"] == old["token_id"]
    assert info_new["replaced_by"] is None
    assert info_new["finish_when_idle_seconds"] is None
    listed = {
        item["token_id"]: item
        for item in admin.get("/auth/tokens", params={"name": "pair"}).json()["items"]
    }
    assert listed[old["token_id"]]["replaced_by"] == new["token_id"]
    assert listed[new["token_id"]]["rotated_from"] == old["token_id"]
    answer = validate(anonymous, old["token"])
    assert (answer["valid"], answer["replaced_by"]) == (True, new["token_id"])


def test_both_changes_are_audited(admin: httpx.Client, server: ServerProcess) -> None:
    old = create(admin, name="audited", scopes=["read"], ttl_days=3)
    new = rotate(admin, old["token_id"], grace_seconds=600, finish_when_idle_seconds=120).json()
    (rotation, *_) = admin.get(f"/auth/tokens/{old['token_id']}/audit").json()["items"]
    assert rotation["action"] == "rotate"
    assert rotation["details"] == {
        "replaced_by": new["token_id"],
        "finish_when_idle_seconds": 120,
        "grace_seconds": 600,
        "expires_at": new["previous"]["expires_at"].replace("+00:00", "Z"),
        "previous_expires_at": old["expires_at"].replace("+00:00", "Z"),
    }
    (creation,) = admin.get(f"/auth/tokens/{new['token_id']}/audit").json()["items"]
    assert creation["action"] == "create"
    assert creation["details"]["rotated_from"] == old["token_id"]
    assert creation["actor_id"] == rotation["actor_id"]
    # No raw token in either.
    assert new["token"] not in str(rotation) + str(creation)


@pytest.fixture
def revoked(admin: httpx.Client) -> str:
    made = create(admin, name="revoked", scopes=["read"])
    admin.post(f"/auth/tokens/{made['token_id']}/revoke").raise_for_status()
    return str(made["token_id"])


@pytest.fixture
def expired(backend: Backend) -> str:
    _, token_id = insert_token(backend, expires_at=utcnow() - timedelta(minutes=1))
    return token_id


@pytest.fixture
def rotated(admin: httpx.Client) -> str:
    made = create(admin, name="rotated", scopes=["read"])
    rotate(admin, made["token_id"], grace_seconds=600).raise_for_status()
    return str(made["token_id"])


@pytest.mark.parametrize(
    ("which", "words"),
    [("revoked", "is revoked"), ("expired", "has expired"), ("rotated", "already rotated")],
)
def test_what_cannot_be_rotated_is_a_409(
    admin: httpx.Client, request: pytest.FixtureRequest, which: str, words: str
) -> None:
    token_id = request.getfixturevalue(which)
    before = admin.get("/auth/tokens", params={"status": "all", "limit": 1000}).json()
    response = rotate(admin, token_id, grace_seconds=60)
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "conflict"
    assert words in response.json()["detail"]
    after = admin.get("/auth/tokens", params={"status": "all", "limit": 1000}).json()
    assert after == before


def test_a_rotated_token_is_not_extended(admin: httpx.Client) -> None:
    # Its grace is the rotation's: an extension would revive a replaced token.
    old = create(admin, name="not-extended", scopes=["read"], ttl_days=3)
    new = rotate(admin, old["token_id"], grace_seconds=60).json()
    response = admin.post(f"/auth/tokens/{old['token_id']}/extend", json={"days": 1})
    assert response.status_code == 409
    assert new["token_id"] in response.json()["detail"]
    assert admin.post(f"/auth/tokens/{new['token_id']}/extend", json={"days": 1}).status_code == 200


def test_an_unknown_id_is_a_404(admin: httpx.Client) -> None:
    response = rotate(admin, "tok_0000000000000000", grace_seconds=60)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"grace_seconds": -1},
        {"grace_seconds": 30 * 86400 + 1},
        {"grace_seconds": "60"},
        {"grace_seconds": 60.0},
        {"grace_seconds": True},
        {"grace_seconds": 600, "finish_when_idle_seconds": 0},
        # Shorter than an SDK's report interval and the flush: could end a used token's grace.
        {"grace_seconds": 600, "finish_when_idle_seconds": 119},
        {"grace_seconds": 600, "finish_when_idle_seconds": 601},
        {"grace_seconds": 0, "finish_when_idle_seconds": 120},
        {"grace_seconds": 60, "extra": 1},
    ],
)
def test_bad_bodies_are_a_422(admin: httpx.Client, body: dict[str, Any]) -> None:
    made = create(admin, name="bad", scopes=["read"])
    response = rotate(admin, made["token_id"], **body)
    assert response.status_code == 422, response.text
    assert admin.get(f"/auth/tokens/{made['token_id']}").json()["replaced_by"] is None


def test_an_idempotency_key_makes_a_retry_a_replay(admin: httpx.Client) -> None:
    old = create(admin, name="retried", scopes=["read"])
    key = {IDEMPOTENCY_KEY_HEADER: "rotate-retried-1"}
    path = f"/auth/tokens/{old['token_id']}/rotate"
    first = admin.post(path, json={"grace_seconds": 60}, headers=key)
    assert first.status_code == 201
    again = admin.post(path, json={"grace_seconds": 60}, headers=key)
    assert again.status_code == 200
    assert again.headers[IDEMPOTENT_REPLAYED_HEADER] == "true"
    assert again.headers["cache-control"] == "no-store"
    assert again.json()["token"] is None
    assert again.json()["token_id"] == first.json()["token_id"]
    assert again.json()["previous"] == first.json()["previous"]
    other = admin.post(path, json={"grace_seconds": 61}, headers=key)
    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"
    successors = [
        item
        for item in admin.get("/auth/tokens", params={"name": "retried"}).json()["items"]
        if item["rotated_from"] == old["token_id"]
    ]
    assert len(successors) == 1


def test_subscribers_hear_the_old_tokens_change(admin: httpx.Client, server: ServerProcess) -> None:
    old = create(admin, name="heard", scopes=["read"])
    with EventStream(server.base_url) as stream:
        stream.until("ready")
        rotate(admin, old["token_id"], grace_seconds=60).raise_for_status()
        event = stream.until("rotated")
    assert event.data["token_hash"] == hash_token(old["token"])
    assert event.data["version"] == 2


@pytest.fixture
def delegate(admin: httpx.Client, server: ServerProcess) -> Iterator[httpx.Client]:
    made = create(
        admin, name="delegate", scopes=["tokens:manage", "read"], ttl_days=2, owner="payments"
    )
    with server.client(token=made["token"]) as client:
        yield client


def test_a_delegate_rotates_only_within_its_delegation(
    admin: httpx.Client, delegate: httpx.Client
) -> None:
    short = create(admin, name="short", scopes=["read"], ttl_days=1, owner="payments")
    assert rotate(delegate, short["token_id"], grace_seconds=60).status_code == 201
    # A successor outliving the delegate, or holding a scope it does not hold.
    forever = create(admin, name="forever", scopes=["read"], owner="payments")
    long_lived = create(admin, name="long", scopes=["read"], ttl_days=30, owner="payments")
    writer = create(admin, name="writer", scopes=["write"], ttl_days=1, owner="payments")
    for target, code in (
        (forever, "expires_after_manager"),
        (long_lived, "expires_after_manager"),
        (writer, "scope_not_held"),
    ):
        response = rotate(delegate, target["token_id"], grace_seconds=60)
        assert response.status_code == 403, response.text
        assert response.json()["error"] == code
        assert admin.get(f"/auth/tokens/{target['token_id']}").json()["replaced_by"] is None


@pytest.mark.postgres
@pytest.mark.redis
def test_two_replicas_rotate_a_token_once_and_both_answer_its_successor(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    one, two = replicas
    with one.client() as first, two.client() as second:
        tokens = [create(first, name="raced", ttl_days=1) for _ in range(10)]
        for item in tokens:
            # Both replicas hold the positive answer before the race.
            assert validate(first, item["token"])["replaced_by"] is None
            assert validate(second, item["token"])["replaced_by"] is None

    async def race() -> list[tuple[httpx.Response, ...]]:
        headers = {"Authorization": f"Bearer {one.admin_token}"}
        async with (
            httpx.AsyncClient(base_url=one.base_url, headers=headers) as a,
            httpx.AsyncClient(base_url=two.base_url, headers=headers) as b,
        ):
            return list(
                await asyncio.gather(
                    *(
                        asyncio.gather(
                            a.post(f"/auth/tokens/{t['token_id']}/rotate", json={}),
                            b.post(f"/auth/tokens/{t['token_id']}/rotate", json={}),
                        )
                        for t in tokens
                    )
                )
            )

    with one.client() as first, two.client() as second:
        for item, answers in zip(tokens, asyncio.run(race()), strict=True):
            assert sorted(r.status_code for r in answers) == [201, 409]
            (won,) = [r.json() for r in answers if r.status_code == 201]
            for replica in (first, second):
                answer = validate(replica, item["token"])
                assert (answer["valid"], answer["replaced_by"]) == (True, won["token_id"])
            successors = [
                t
                for t in first.get("/auth/tokens", params={"name": "raced", "limit": 1000}).json()[
                    "items"
                ]
                if t["rotated_from"] == item["token_id"]
            ]
            assert [t["token_id"] for t in successors] == [won["token_id"]]
        # A grace of 0 through one replica: refused by the other at once.
        assert validate(second, won["token"])["valid"] is True  # cached there
        last = rotate(first, won["token_id"], grace_seconds=0).json()
        assert last["previous"]["status"] == "revoked"
        assert validate(second, won["token"])["reason"] == "revoked"


# -- finishing when idle: usage decides ---------------------------------------------


@pytest.mark.anyio
async def test_the_grace_ends_once_the_old_token_goes_idle_counting_sdk_reports(
    app: tuple[httpx.AsyncClient, Services], clock: Clock
) -> None:
    client, parts = app
    assert parts.usage_flush is not None

    async def finished() -> set[str]:
        # This module's other tests share the database: only this test's token counts.
        return set(await parts.rotations.scan_once()) & {old["token_id"]}

    old = (await client.post("/auth/tokens", json={"name": "idle", "scopes": ["read"]})).json()
    assert (await _validate(client, old["token"]))["valid"]  # a use, by the server
    await parts.usage_flush.flush()
    rotated = await client.post(
        f"/auth/tokens/{old['token_id']}/rotate",
        json={"grace_seconds": 3600, "finish_when_idle_seconds": 300},
    )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()

    clock.now += 299  # unused for 299 s: still in its grace
    assert await finished() == set()
    # An SDK reports the cache hits it answered meanwhile: a use, at report time.
    report = {"hits": [{"token_hash": hash_token(old["token"]), "count": 7}]}
    assert (await client.post("/auth/usage", json=report)).status_code == 204
    await parts.usage_flush.flush()
    clock.now += 299  # 598 s after the last server use, 299 s after the report
    assert await finished() == set()
    assert (await _validate(client, old["token"]))["valid"]  # and a server use again
    await parts.usage_flush.flush()

    clock.now += 300  # now 300 s without any use
    assert await finished() == {old["token_id"]}
    assert await finished() == set()  # once
    answer = await _validate(client, old["token"])
    assert (answer["valid"], answer["reason"]) == (False, "revoked")
    assert (await _validate(client, new["token"]))["valid"]
    audit = (await client.get(f"/auth/tokens/{old['token_id']}/audit")).json()["items"]
    assert (audit[0]["action"], audit[0]["actor_id"]) == ("rotation_finished", "system")
    info = (await client.get(f"/auth/tokens/{old['token_id']}")).json()
    assert info["status"] == "revoked"
    assert _time(info["revoked_at"]).timestamp() == clock.now


@pytest.mark.anyio
async def test_a_never_used_old_token_is_idle_from_its_rotation_and_no_limit_no_end(
    app: tuple[httpx.AsyncClient, Services], clock: Clock
) -> None:
    client, parts = app

    async def finished() -> set[str]:
        return set(await parts.rotations.scan_once()) & {quiet["token_id"], plain["token_id"]}

    quiet = (await client.post("/auth/tokens", json={"name": "quiet", "scopes": ["a"]})).json()
    plain = (await client.post("/auth/tokens", json={"name": "plain", "scopes": ["a"]})).json()
    for made, body in (
        (quiet, {"grace_seconds": 3600, "finish_when_idle_seconds": 600}),
        (plain, {"grace_seconds": 3600}),
    ):
        response = await client.post(f"/auth/tokens/{made['token_id']}/rotate", json=body)
        assert response.status_code == 201, response.text
    # Never used: idle from the rotation on, so it gets its 600 s to show a use.
    clock.now += 599
    assert await finished() == set()
    clock.now += 1
    assert await finished() == {quiet["token_id"]}
    clock.now += 2999  # without the limit, the whole grace, used or not
    assert await finished() == set()
    assert (await _validate(client, plain["token"]))["valid"]
    clock.now += 1
    assert (await _validate(client, plain["token"]))["reason"] == "expired"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("settings", "idle", "status"),
    [
        # Nothing would tell a busy old token from an idle one.
        ({"usage_counting": False}, 600, 409),
        # A use may take a report interval (60 s) and a flush (600 s) to show.
        ({"usage_flush_seconds": 600}, 660, 422),
        ({"usage_flush_seconds": 600}, 661, 201),
    ],
)
async def test_an_idle_limit_this_server_cannot_tell_is_refused(
    backend: Backend, settings: dict[str, Any], idle: int, status: int
) -> None:
    async with in_process(backend, **settings) as (client, _):
        made = (await client.post("/auth/tokens", json={"name": "idle", "scopes": ["a"]})).json()
        response = await client.post(
            f"/auth/tokens/{made['token_id']}/rotate",
            json={"grace_seconds": 3600, "finish_when_idle_seconds": idle},
        )
        assert response.status_code == status, response.text
        info = (await client.get(f"/auth/tokens/{made['token_id']}")).json()
        assert (info["replaced_by"] is not None) == (status == 201)
        if status != 201:
            assert "finish_when_idle_seconds" in response.json()["detail"]
