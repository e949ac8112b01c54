"""A revoke returns only once every replica listening on Redis confirmed it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from amplify_auth_client import hash_token
from tests.server.conftest import create, validate
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.services import RedisNamespace, fresh_database, redis_namespace

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def namespace() -> Iterator[RedisNamespace]:
    with redis_namespace() as ns:
        yield ns


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, namespace: RedisNamespace
) -> Iterator[ServerProcess]:
    directory: Path = tmp_path_factory.mktemp("invalidation")
    with fresh_database() as url:
        backend = Backend("postgres", directory, url, namespace)
        with running_server(backend, env={"INVALIDATION_ACK_TIMEOUT": "2"}) as process:
            yield process


class SlowReplica:
    """Listens on the invalidation channel like a replica, and acks only when told."""

    def __init__(self, namespace: RedisNamespace) -> None:
        self.client = namespace.client()
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        # The channel carries the database's installation id after the prefix.
        self.pubsub.psubscribe(f"{namespace.prefix}:*:invalidate")
        self.channel = ""

    def next_invalidation(self) -> dict[str, str]:
        # get_message answers None for the (ignored) subscribe confirmation too.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=1)
            if message is not None:
                self.channel = message["channel"].decode()
                data: dict[str, str] = json.loads(message["data"])
                return data
        raise AssertionError("no invalidation was published")

    def ack(self, invalidation: dict[str, str], replica: str = "slow-replica") -> None:
        channel = self.channel.removesuffix(":invalidate") + f":ack:{invalidation['origin']}"
        self.client.publish(channel, f"{invalidation['nonce']}:{replica}")

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


def test_revoke_waits_for_every_replica_to_confirm(
    server: ServerProcess, namespace: RedisNamespace
) -> None:
    replica = SlowReplica(namespace)
    try:
        with server.client() as admin:
            created = create(admin)
            assert validate(admin, created["token"])["valid"] is True
            answered = threading.Event()

            def revoke() -> None:
                admin.post(f"/auth/tokens/{created['token_id']}/revoke").raise_for_status()
                answered.set()

            revoking = threading.Thread(target=revoke)
            revoking.start()
            invalidation = replica.next_invalidation()
            # What travels is the hash and the new state, never the token.
            [[key, state]] = invalidation["changes"]
            assert key == hash_token(created["token"])
            assert created["token"] not in json.dumps(invalidation)
            assert '"r":true' in state
            # The server has heard itself; it still waits for us.
            assert not answered.wait(0.3)
            replica.ack(invalidation)
            assert answered.wait(5)
            revoking.join()
    finally:
        replica.close()


def test_a_replica_that_never_confirms_delays_the_revoke_only_until_the_timeout(
    server: ServerProcess, namespace: RedisNamespace
) -> None:
    replica = SlowReplica(namespace)
    try:
        with server.client() as admin:
            created = create(admin)
            response = admin.post(f"/auth/tokens/{created['token_id']}/revoke")
            assert response.status_code == 200
            [[key, _]] = replica.next_invalidation()["changes"]
            assert key == hash_token(created["token"])
            assert validate(admin, created["token"])["reason"] == "revoked"
        assert "1 of 2 replicas did not confirm 1 change(s)" in server.log()
    finally:
        replica.close()


def test_an_ack_repeated_by_one_replica_counts_once(
    server: ServerProcess, namespace: RedisNamespace
) -> None:
    replica = SlowReplica(namespace)
    try:
        with server.client() as admin:
            created = create(admin)
            answered = threading.Event()
            revoking = threading.Thread(
                target=lambda: (
                    admin.post(f"/auth/tokens/{created['token_id']}/revoke"),
                    answered.set(),
                )
            )
            revoking.start()
            invalidation = replica.next_invalidation()
            # Two receivers, the server and us. Acks repeating the server's own
            # replica id must not stand in for ours...
            replica.ack(invalidation, replica=invalidation["origin"])
            replica.ack(invalidation, replica=invalidation["origin"])
            assert not answered.wait(0.5)
            # ...so the revoke waits for ours, or for the timeout.
            replica.ack(invalidation)
            assert answered.wait(5)
            revoking.join()
    finally:
        replica.close()
