"""Webhooks: signed events from the outbox to a real receiver, at least once, on both backends."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from amplify_auth_client import generate_token, hash_token
from amplify_auth_server.commands import Batch, Command, Writer
from amplify_auth_server.config import Settings
from amplify_auth_server.database import create_engine, migrate
from amplify_auth_server.deliveries import Retries
from amplify_auth_server.errors import Conflict
from amplify_auth_server.models import SYSTEM, Actor, TokenRecord, utcnow
from amplify_auth_server.store import TokenStore
from amplify_auth_server.tables import webhook_outbox
from amplify_auth_server.webhooks import WebhookOutbox
from tests.server.conftest import create, validate
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.services import fresh_database, redis_namespace
from tests.support.waiting import wait_for
from tests.support.webhooks import SECRET, Receiver, receiver


def hooks_env(url: str, **overrides: str) -> dict[str, str]:
    """Webhook settings with short waits: retries, polls and scans in tenths of a second."""
    return {
        "WEBHOOK_URLS": url,
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_RETRY_INITIAL": "0.2",
        "WEBHOOK_POLL_INTERVAL": "0.1",
        "WEBHOOK_SCAN_INTERVAL": "0.2",
        "WEBHOOK_TIMEOUT": "2",
        # Uses reach last_used_at quickly: token.expiring is for used tokens only.
        "USAGE_FLUSH_SECONDS": "0.1",
        **overrides,
    }


@pytest.fixture(scope="module")
def hooks() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


@pytest.fixture(scope="module")
def hooked(backend: Backend, hooks: Receiver) -> Iterator[ServerProcess]:
    """A server sending its events to ``hooks``."""
    with running_server(backend, env=hooks_env(hooks.url)) as process:
        yield process


@pytest.fixture
def fresh(backend: Backend, tmp_path: Path) -> Iterator[Backend]:
    """A backend of the same kind with a database of its own (for servers a test kills)."""
    if backend.name == "embedded":
        yield Backend("embedded", tmp_path)
        return
    with fresh_database() as url, redis_namespace() as namespace:
        yield Backend("postgres", tmp_path, url, namespace)


def types_of(hooks: Receiver, token_id: str) -> list[str]:
    """The types of the events delivered about ``token_id``, in the order they happened
    (deliveries are not ordered: two events claimed together are sent side by side)."""
    events = sorted((r.event for r in hooks.delivered(token_id)), key=lambda e: e["timestamp"])
    return [event["type"] for event in events]


def test_every_event_is_signed_and_names_the_token_without_secrets(
    hooked: ServerProcess, hooks: Receiver
) -> None:
    with hooked.client() as admin:
        created = create(admin, name="signed", scopes=["read", "write"], ttl_days=30)
        token_id = created["token_id"]
        assert admin.post(f"/auth/tokens/{token_id}/extend", json={"days": 10}).status_code == 200
        assert admin.post(f"/auth/tokens/{token_id}/revoke").status_code == 200
        # Revoking again changes nothing, and sends nothing.
        assert admin.post(f"/auth/tokens/{token_id}/revoke").status_code == 200
        admin_id = admin.get("/auth/tokens", params={"scope": "admin"}).json()["items"][0][
            "token_id"
        ]
    wait_for(lambda: len(hooks.delivered(token_id)) == 3)
    assert types_of(hooks, token_id) == ["token.created", "token.extended", "token.revoked"]
    events = sorted((r.verified() for r in hooks.delivered(token_id)), key=lambda e: e["timestamp"])
    assert len({r.webhook_id for r in hooks.delivered(token_id)}) == 3
    for event in events:
        assert set(event) == {"type", "timestamp", "data"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", event["timestamp"])
        assert event["data"]["token_id"] == token_id
        assert event["data"]["name"] == "signed"
        assert event["data"]["scopes"] == ["read", "write"]
        assert event["data"]["actor_id"] == admin_id
        assert event["data"]["created_at"] == created["created_at"]
    assert events[0]["data"]["expires_at"] == created["expires_at"]
    assert events[1]["data"]["expires_at"] > created["expires_at"]
    assert events[2]["data"]["revoked_at"] is not None
    for raw in hooks.about(token_id):
        assert created["token"].encode() not in raw.body
        assert hash_token(created["token"]).encode() not in raw.body
        assert raw.headers["webhook-signature"].startswith("v1,")
    # Signed with another secret, the same request does not verify.
    other = "whsec_" + "A" * 43 + "="
    with pytest.raises(Exception, match="signature"):
        hooks.delivered(token_id)[0].verified(other)


def test_a_rotation_sends_the_successors_creation_and_the_old_tokens_rotation(
    hooked: ServerProcess, hooks: Receiver
) -> None:
    with hooked.client() as admin:
        old = create(admin, name="rotated-hooked", ttl_days=30)
        response = admin.post(f"/auth/tokens/{old['token_id']}/rotate", json={"grace_seconds": 60})
        assert response.status_code == 201, response.text
        new = response.json()
    # The old token's id is in three events: its creation, its rotation, and
    # the successor's creation (rotated_from).
    wait_for(lambda: len(hooks.delivered(old["token_id"])) == 3)
    events = {
        (event["type"], event["data"]["token_id"]): event["data"]
        for event in (r.verified() for r in hooks.delivered(old["token_id"]))
    }
    assert set(events) == {
        ("token.created", old["token_id"]),
        ("token.rotated", old["token_id"]),
        ("token.created", new["token_id"]),
    }
    rotated = events["token.rotated", old["token_id"]]
    assert rotated["replaced_by"] == new["token_id"]
    assert rotated["expires_at"] == new["previous"]["expires_at"]  # the grace's end
    assert events["token.created", new["token_id"]]["rotated_from"] == old["token_id"]
    for raw in hooks.about(old["token_id"]):
        for secret in (old["token"], new["token"]):
            assert secret.encode() not in raw.body
            assert hash_token(secret).encode() not in raw.body


def test_a_bulk_revocation_sends_one_event_per_token(
    hooked: ServerProcess, hooks: Receiver
) -> None:
    with hooked.client() as admin:
        ids = [create(admin, name=f"bulk-{i}")["token_id"] for i in range(3)]
        response = admin.post("/auth/tokens/revoke", json={"token_ids": ids})
        assert response.status_code == 200, response.text
    for token_id in ids:
        wait_for(lambda token_id=token_id: "token.revoked" in types_of(hooks, token_id))
        assert types_of(hooks, token_id) == ["token.created", "token.revoked"]


def test_a_failed_delivery_is_retried_with_the_same_id_and_counted(
    hooked: ServerProcess, hooks: Receiver
) -> None:
    hooks.fail["retried-after-500"] = [500, 503]
    with hooked.client() as admin:
        token_id = create(admin, name="retried-after-500")["token_id"]
    wait_for(lambda: hooks.delivered(token_id))
    attempts = hooks.about(token_id)
    assert [r.status for r in attempts] == [500, 503, 200]
    assert len({r.webhook_id for r in attempts}) == 1
    # Each attempt is signed afresh, and each verifies.
    for attempt in attempts:
        assert attempt.verified()["data"]["token_id"] == token_id
    metrics = httpx.get(hooked.base_url + "/metrics").text
    assert (
        _sample(metrics, "amplify_auth_webhook_deliveries_total", "token.created", "retrying") >= 2
    )
    assert (
        _sample(metrics, "amplify_auth_webhook_deliveries_total", "token.created", "delivered") >= 1
    )
    assert "failed (attempt 1)" in hooked.log()
    assert SECRET not in hooked.log()


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(
    hooked: ServerProcess, hooks: Receiver
) -> None:
    released = hooks.block["answers-too-late"] = threading.Event()
    try:
        with hooked.client() as admin:
            token_id = create(admin, name="answers-too-late")["token_id"]
        wait_for(lambda: hooks.seen(token_id))
        del hooks.block["answers-too-late"]  # the next attempt is answered at once
        wait_for(lambda: hooks.delivered(token_id))
    finally:
        released.set()
    (held,) = hooks.held(token_id)
    assert held.webhook_id == hooks.delivered(token_id)[0].webhook_id
    assert "timed out" in hooked.log()


def test_token_expiring_is_sent_once_per_expiry_only_for_used_unrevoked_tokens(
    backend: Backend, hooked: ServerProcess, hooks: Receiver
) -> None:
    # Used a moment ago, as the others: only its revocation keeps it quiet.
    revoked = _insert(backend, expires_in=timedelta(days=2), revoked=True)
    with hooked.client() as admin:
        soon = create(admin, name="expiring-soon", ttl_days=3)
        later = create(admin, name="expiring-later", ttl_days=30)
        unused = create(admin, name="expiring-unused", ttl_days=3)["token_id"]
        rotated = create(admin, name="expiring-rotated", ttl_days=30)
        for used in (soon, later, rotated):
            assert validate(admin, used["token"])["valid"]
        # Its grace (an hour) ends within the window: announced as token.rotated,
        # and its successor is the one to hear about, not it.
        moved = admin.post(
            f"/auth/tokens/{rotated['token_id']}/rotate", json={"grace_seconds": 3600}
        )
        assert moved.status_code == 201, moved.text
        soon, later = soon["token_id"], later["token_id"]
        wait_for(lambda: "token.expiring" in types_of(hooks, soon))
        expiring = [
            r.verified() for r in hooks.delivered(soon) if r.event["type"] == "token.expiring"
        ]
        assert expiring[0]["data"]["actor_id"] == "system"
        # Extended, still within the window: warned again, of the new expiry.
        assert admin.post(f"/auth/tokens/{soon}/extend", json={"days": 1}).status_code == 200
        wait_for(lambda: types_of(hooks, soon).count("token.expiring") == 2)
        # A marker: another token warned after several more scans.
        marker_token = create(admin, name="expiring-marker", ttl_days=1)
        assert validate(admin, marker_token["token"])["valid"]
        marker = marker_token["token_id"]
        wait_for(lambda: "token.expiring" in types_of(hooks, marker))
        audit = admin.get("/auth/audit", params={"action": "expiring_notified"}).json()["items"]
    assert types_of(hooks, soon) == [
        "token.created",
        "token.expiring",
        "token.extended",
        "token.expiring",
    ]
    first, second = sorted(
        (r.event for r in hooks.delivered(soon) if r.event["type"] == "token.expiring"),
        key=lambda e: e["timestamp"],
    )
    assert first["data"]["expires_at"] < second["data"]["expires_at"]
    assert types_of(hooks, later) == ["token.created"]
    # Never used: nobody needs to hear that a dead token is about to die.
    assert types_of(hooks, unused) == ["token.created"]
    assert "token.expiring" not in types_of(hooks, rotated["token_id"])
    assert not hooks.seen(revoked)
    assert sum(1 for entry in audit if entry["token_id"] == soon) == 2


def test_given_up_deliveries_are_kept_counted_and_logged(fresh: Backend, hooks: Receiver) -> None:
    hooks.fail["never-taken"] = [500] * 1000
    # A horizon of about a second: the first retries, then given up.
    env = hooks_env(hooks.url, WEBHOOK_RETRY_HOURS="0.0003")
    with running_server(fresh, env=env) as server, server.client() as admin:
        token_id = create(admin, name="never-taken")["token_id"]

        def given_up() -> bool:
            metrics = httpx.get(server.base_url + "/metrics").text
            return _gauge(metrics, "amplify_auth_webhook_given_up") >= 1

        wait_for(given_up)
        metrics = httpx.get(server.base_url + "/metrics").text
        assert (
            _sample(metrics, "amplify_auth_webhook_deliveries_total", "token.created", "given_up")
            == 1
        )
        assert _gauge(metrics, "amplify_auth_webhook_backlog") == 0
        assert "given up after" in server.log()
        assert SECRET not in server.log()
        rows = _outbox(fresh)
        assert len(rows) == 1
        assert rows[0]["failed_at"] is not None
        assert rows[0]["last_error"] == "HTTP 500"
        assert rows[0]["attempts"] >= 2
    assert all(r.status == 500 for r in hooks.about(token_id))


def test_a_server_killed_mid_delivery_delivers_after_restart_with_the_same_id(
    fresh: Backend, hooks: Receiver
) -> None:
    released = hooks.block["killed-mid-delivery"] = threading.Event()
    with running_server(fresh, env=hooks_env(hooks.url)) as server:
        with server.client() as admin:
            token_id = create(admin, name="killed-mid-delivery")["token_id"]
        # The change committed, its event is on its way and unanswered: kill.
        wait_for(lambda: hooks.seen(token_id))
        server.kill()
        del hooks.block["killed-mid-delivery"]
        released.set()
        assert len(_outbox(fresh)) == 1
        server.start()
        wait_for(lambda: hooks.delivered(token_id))
    delivered = hooks.delivered(token_id)
    assert len(delivered) == 1
    assert delivered[0].verified()["data"]["token_id"] == token_id
    (first,) = hooks.held(token_id)
    assert first.webhook_id == delivered[0].webhook_id
    assert _outbox(fresh) == []


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Backend]:
    """One PostgreSQL database and Redis namespace for two replicas (SQLite serves one process)."""
    with fresh_database() as url, redis_namespace() as namespace:
        yield Backend("postgres", tmp_path, url, namespace)


@pytest.mark.postgres
@pytest.mark.redis
def test_replicas_share_the_outbox_without_sending_an_event_twice(
    shared: Backend, hooks: Receiver
) -> None:
    admin_token = generate_token()
    env = hooks_env(hooks.url)
    with (
        running_server(shared, env=env, admin_token=admin_token) as one,
        running_server(shared, env=env, admin_token=admin_token) as two,
        one.client() as first,
        two.client() as second,
    ):
        ids = [
            create(client, name=f"shared-{i}")["token_id"]
            for i in range(10)
            for client in (first, second)
        ]
        for token_id in ids:
            wait_for(lambda token_id=token_id: hooks.delivered(token_id))
        # Both replicas poll the same rows every 0.1 s: each event still arrives once.
        counted = [httpx.get(s.base_url + "/metrics").text for s in (one, two)]
    for token_id in ids:
        assert len(hooks.about(token_id)) == 1
    sent = [
        _sample(m, "amplify_auth_webhook_deliveries_total", "token.created", "delivered")
        for m in counted
    ]
    assert sum(sent) == len(ids)
    assert all(n > 0 for n in sent)  # both replicas sent


def test_a_command_that_fails_sends_nothing_and_one_that_commits_sends_to_every_url(
    fresh: Backend,
) -> None:
    """In process, on the writer itself: the rows live and die with the command's savepoint."""
    urls = ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b")
    now = utcnow()
    record = TokenRecord.new(
        token_hash=hash_token(generate_token()),
        name="written",
        scopes=("read",),
        created_by="test",
        now=now,
    )

    @dataclasses.dataclass(frozen=True)
    class Notifies(Command[None]):
        actor: Actor
        fail: bool

        async def run(self, batch: Batch) -> None:
            await batch.notify("token.revoked", [(record, self.actor)])
            if self.fail:
                raise Conflict("refused after notifying")

    async def scenario() -> None:
        engine = create_engine(fresh.store_url)
        try:
            await migrate(engine)
            store = TokenStore(engine)
            outbox = WebhookOutbox(urls)
            with pytest.raises(Conflict):
                await Writer(store, None, webhooks=outbox).run_one(Notifies(SYSTEM, fail=True))
            assert not outbox.due.is_set()
            await Writer(store, None).run_one(Notifies(SYSTEM, fail=False))  # no URLs: nothing
            await Writer(store, None, webhooks=outbox).run_one(Notifies(SYSTEM, fail=False))
            assert outbox.due.is_set()
        finally:
            await engine.dispose()

    asyncio.run(scenario())
    rows = _outbox(fresh)
    assert sorted(row["url"] for row in rows) == list(urls)
    assert len({row["id"] for row in rows}) == 1
    assert len({row["body"] for row in rows}) == 1
    assert rows[0]["id"].startswith("msg_")


def test_without_webhook_urls_nothing_is_written(backend: Backend, server: ServerProcess) -> None:
    with server.client() as admin:
        token_id = create(admin, name="unhooked")["token_id"]
        assert admin.post(f"/auth/tokens/{token_id}/revoke").status_code == 200
    assert not [row for row in _outbox(backend) if token_id in row["body"]]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param(
            {"WEBHOOK_URLS": "https://hooks.example.com/a"},
            "without WEBHOOK_SECRET",
            id="no-secret",
        ),
        pytest.param(
            {"WEBHOOK_URLS": "ftp://hooks.example.com/a", "WEBHOOK_SECRET": SECRET},
            "http(s)",
            id="scheme",
        ),
        pytest.param(
            {"WEBHOOK_URLS": "https://user:pw@hooks.example.com/", "WEBHOOK_SECRET": SECRET},
            "credentials",
            id="userinfo",
        ),
        pytest.param({"WEBHOOK_SECRET": SECRET[6:]}, "must start with whsec_", id="prefix"),
        pytest.param({"WEBHOOK_SECRET": "whsec_not*base64"}, "base64", id="not-base64"),
        pytest.param({"WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "use 24 to 64", id="short"),
        pytest.param({"WEBHOOK_RETRY_HOURS": "0"}, "WEBHOOK_RETRY_HOURS", id="no-retries"),
    ],
)
def test_bad_webhook_settings_are_refused(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert message in str(refused.value).replace("webhook_retry_hours", "WEBHOOK_RETRY_HOURS")
    assert SECRET[6:] not in str(refused.value) or "WEBHOOK_SECRET" not in env


def test_a_bad_webhook_secret_stops_start_up(tmp_path: Path) -> None:
    from tests.support.server import run_cli

    secret = "whsec_" + "x" * 12
    result = run_cli(
        "serve",
        cwd=tmp_path,
        env={"WEBHOOK_URLS": "https://hooks.example.com/", "WEBHOOK_SECRET": secret},
    )
    assert result.returncode == 2
    assert "WEBHOOK_SECRET" in result.stderr
    assert "Traceback" not in result.stderr
    assert secret not in result.stderr


def _sample(metrics: str, name: str, type_: str, result: str) -> float:
    pattern = (
        rf'^{name}\{{(?=[^}}]*result="{result}")(?=[^}}]*type="{re.escape(type_)}")[^}}]*\}} (\S+)$'
    )
    found = re.search(pattern, metrics, re.MULTILINE)
    return 0.0 if found is None else float(found.group(1))


def _gauge(metrics: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", metrics, re.MULTILINE)
    assert found is not None, name
    return float(found.group(1))


def _outbox(backend: Backend) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        engine = create_engine(backend.store_url)
        try:
            async with engine.connect() as connection:
                rows = (await connection.execute(select(webhook_outbox))).all()
            return [dict(row._mapping) for row in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _insert(backend: Backend, *, expires_in: timedelta, revoked: bool) -> str:
    """A token written straight into the database (a revoked one, here): its id."""
    now = utcnow()
    record = TokenRecord.new(
        token_hash=hash_token(generate_token()),
        name="inserted-expiring",
        scopes=("read",),
        created_by="test",
        now=now,
        expires_at=now + expires_in,
    )
    if revoked:
        record = dataclasses.replace(record, revoked_at=now, last_used_at=now)

    async def insert() -> None:
        engine = create_engine(backend.store_url)
        try:
            store = TokenStore(engine)
            async with store.transaction() as connection:
                await store.insert(connection, record)
        finally:
            await engine.dispose()

    asyncio.run(insert())
    return record.id


def test_retries_double_with_jitter_up_to_an_hour_and_stop_at_the_horizon() -> None:
    retries = Retries(initial=timedelta(seconds=5), horizon=timedelta(hours=24))
    created = utcnow()
    rng = random.Random(13)
    for attempts, full in ((1, 5), (2, 10), (3, 20), (10, 2560), (13, 3600), (40, 3600)):
        due = retries.next_attempt(attempts, created, created, rng)
        assert due is not None
        assert full / 2 <= (due - created).total_seconds() <= full, attempts
    # The last attempt is made at the horizon itself; one failing there gives up.
    late = created + timedelta(hours=23, minutes=59)
    assert retries.next_attempt(20, created, late, rng) == created + timedelta(hours=24)
    assert retries.next_attempt(21, created, created + timedelta(hours=24), rng) is None
