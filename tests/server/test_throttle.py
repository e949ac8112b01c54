"""Failures are throttled per client: 429 with Retry-After past the budget; valid tokens
and other clients are never slowed; shared by replicas through Redis, in process
when Redis is away; a forwarded address believed only from a trusted proxy.

Each test is its own client: a loopback address of its own (all of 127.0.0.0/8
reaches the server), so that budgets spent by one test never touch another.
Budgets are per hour: no window can end during a test, so nothing here waits.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from amplify_auth_client import generate_token
from tests.server.conftest import create, validate
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.services import TcpProxy, fresh_database, private_redis, redis_namespace

_ADDRESSES = itertools.count(2)


def address() -> str:
    """A loopback address no other test of this run sends from."""
    return f"127.0.{next(_ADDRESSES)}.1"


def client_from(
    server: ServerProcess, source: str, token: str | None = None, **headers: str
) -> httpx.Client:
    """A client whose requests come from ``source``."""
    return httpx.Client(
        base_url=server.base_url,
        transport=httpx.HTTPTransport(local_address=source),
        headers={**headers, **({} if token is None else {"Authorization": f"Bearer {token}"})},
        timeout=30.0,
    )


def counted(server: ServerProcess, store: str, kind: str = "validation") -> float:
    """How many failures of ``kind`` the server counted in ``store`` (redis, local)."""
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    pattern = rf'amplify_auth_failures_total{{kind="{kind}",store="{store}"}} (\S+)'
    found = re.search(pattern, metrics)
    return float(found[1]) if found else 0.0


def check(client: httpx.Client, token: str) -> httpx.Response:
    return client.post("/auth/validate", json={"token": token})


def assert_throttled(response: httpx.Response, window: int = 3600) -> None:
    assert response.status_code == 429, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == "too_many_failures"
    assert "valid tokens are still answered" in body["detail"]
    assert 1 <= int(response.headers["retry-after"]) <= window


@pytest.fixture
def strict(backend: Backend) -> Iterator[ServerProcess]:
    """A server on each backend with small budgets."""
    env = {
        "THROTTLE_VALIDATION_FAILURES": "3/hour",
        "THROTTLE_MALFORMED_VALIDATIONS": "5/hour",
        "THROTTLE_ADMIN_FAILURES": "3/hour",
    }
    with running_server(backend, env=env) as server:
        yield server


def test_failed_validations_past_the_budget_are_429_and_valid_tokens_still_answer(
    strict: ServerProcess,
) -> None:
    with strict.client() as admin:
        good = create(admin)
        revoked = create(admin)
        admin.post(f"/auth/tokens/{revoked['token_id']}/revoke").raise_for_status()
    with client_from(strict, address()) as client:
        answers = [check(client, token) for token in (generate_token(), revoked["token"])]
        answers.append(check(client, generate_token()))
        assert [a.json()["reason"] for a in answers] == ["unknown", "revoked", "unknown"]
        assert_throttled(check(client, generate_token()))
        assert_throttled(check(client, revoked["token"]))
        # Valid tokens are never slowed, whoever presents them.
        assert validate(client, good["token"])["valid"] is True
    with client_from(strict, address()) as other:
        assert validate(other, generate_token())["reason"] == "unknown"


def test_malformed_tokens_have_a_budget_of_their_own(strict: ServerProcess) -> None:
    with client_from(strict, address()) as client:
        for n in range(5):
            assert validate(client, f"garbage-{n}")["reason"] == "malformed"
        assert_throttled(check(client, "garbage"))
        # Unknown tokens count elsewhere: not yet past that budget.
        assert validate(client, generate_token())["reason"] == "unknown"


def test_failed_admin_authentications_past_the_budget_are_429_and_the_admin_still_works(
    strict: ServerProcess,
) -> None:
    with strict.client() as admin:
        reader = create(admin, scopes=["read"])["token"]
    source = address()
    with client_from(strict, source, generate_token()) as guesser:
        assert [guesser.get("/auth/tokens").status_code for _ in range(3)] == [401] * 3
        assert_throttled(guesser.get("/auth/tokens"))
    with client_from(strict, source, reader) as not_admin:
        assert_throttled(not_admin.post("/auth/tokens", json={"name": "x", "scopes": ["a"]}))
    with client_from(strict, source, strict.admin_token) as admin:
        assert admin.get("/auth/tokens").status_code == 200
    with client_from(strict, address(), generate_token()) as other:
        assert other.get("/auth/tokens").status_code == 401


@pytest.mark.postgres
@pytest.mark.redis
def test_two_replicas_share_one_budget_through_redis(tmp_path: Path) -> None:
    env = {"THROTTLE_VALIDATION_FAILURES": "4/hour"}
    token = generate_token()
    with fresh_database() as url, redis_namespace() as namespace:
        backend = Backend("postgres", tmp_path, url, namespace)
        with (
            running_server(backend, env=env, admin_token=token) as one,
            running_server(backend, env=env, admin_token=token) as two,
        ):
            source = address()
            with client_from(one, source) as first, client_from(two, source) as second:
                for client in (first, first, second, second):
                    assert validate(client, generate_token())["reason"] == "unknown"
                assert_throttled(check(first, generate_token()))
                assert_throttled(check(second, generate_token()))
            assert counted(one, "redis") + counted(two, "redis") == 6
            assert counted(one, "local") == counted(two, "local") == 0
            # Under the deployment's prefix, as every other key of the server.
            keys = [key.decode() for key in namespace.keys()]  # noqa: SIM118 (not a dict)
            assert any(":throttle" in key for key in keys)


@pytest.mark.postgres
@pytest.mark.redis
def test_with_redis_down_failures_are_counted_in_process_and_never_500(tmp_path: Path) -> None:
    env = {"THROTTLE_VALIDATION_FAILURES": "3/hour", "THROTTLE_ADMIN_FAILURES": "2/hour"}
    with private_redis() as own, fresh_database() as url:
        backend = Backend("postgres", tmp_path, url)
        with running_server(backend, env={**env, "REDIS_URL": own.url}) as server:
            with server.client() as admin:
                good = create(admin)["token"]
            own.stop()
            source = address()
            with client_from(server, source) as client:
                for _ in range(3):
                    assert validate(client, generate_token())["reason"] == "unknown"
                assert_throttled(check(client, generate_token()))
                assert validate(client, good)["valid"] is True
            assert counted(server, "local") == 4
            with client_from(server, source, generate_token()) as guesser:
                assert [guesser.get("/auth/tokens").status_code for _ in range(2)] == [401] * 2
                assert_throttled(guesser.get("/auth/tokens"))
            with server.client() as admin:
                assert admin.get("/auth/tokens").status_code == 200
            assert "Traceback" not in server.log()


@pytest.mark.postgres
@pytest.mark.redis
def test_with_redis_slow_failures_are_counted_in_process_without_waiting_for_it(
    tmp_path: Path,
) -> None:
    from tests.server.test_slow_redis import DELAY, counter

    env = {"THROTTLE_VALIDATION_FAILURES": "3/hour"}
    with private_redis() as own, fresh_database() as url:
        link = TcpProxy(own.port)
        try:
            env["REDIS_URL"] = f"redis://127.0.0.1:{link.port}/0"
            with running_server(Backend("postgres", tmp_path, url), env=env) as server:
                link.delay = DELAY
                slow_before = counter(server, "slow")
                with client_from(server, address()) as client:
                    for _ in range(3):
                        assert validate(client, generate_token())["reason"] == "unknown"
                    assert_throttled(check(client, generate_token()))
                # The throttle follows the cache tier's budget: counted here
                # at once, with a handful of abandoned calls, not a wait per failure.
                assert counted(server, "local") == 4
                assert counted(server, "redis") == 0
                assert counter(server, "slow") - slow_before <= 4
                assert "Traceback" not in server.log()
        finally:
            link.close()


def test_failures_counted_while_redis_is_slow_are_no_cache_lookups(tmp_path: Path) -> None:
    """The throttle shares the cache tier's view of a slow Redis, but a failure it
    counts in process is not a cache lookup skipped: malformed tokens reach no
    cache, whatever Redis is doing (the cache's metrics say so)."""
    from tests.server.test_slow_redis import DELAY, counter

    with private_redis() as own, fresh_database() as url:
        link = TcpProxy(own.port)
        try:
            env = {"REDIS_URL": f"redis://127.0.0.1:{link.port}/0"}
            with running_server(Backend("postgres", tmp_path, url), env=env) as server:
                link.delay = DELAY
                with client_from(server, address()) as client:
                    # A lookup abandoned past the budget: Redis is now "slow".
                    assert validate(client, generate_token())["reason"] == "unknown"
                    assert counter(server, "slow") >= 1
                    skipped = counter(server, "skipped")
                    for i in range(10):
                        assert validate(client, f"amp_live_garbage{i}")["reason"] == "malformed"
                assert counted(server, "local", kind="malformed") == 10
                assert counter(server, "skipped") == skipped
        finally:
            link.close()


def test_a_forwarded_address_is_ignored_unless_its_proxy_is_trusted(tmp_path: Path) -> None:
    env = {"THROTTLE_VALIDATION_FAILURES": "2/hour"}
    backend = Backend("embedded", tmp_path)
    # From 127.0.0.1, the one peer uvicorn would trust by default.
    with running_server(backend, env=env) as server, client_from(server, "127.0.0.1") as client:
        for n in (1, 2):
            headers = {"X-Forwarded-For": f"203.0.113.{n}"}
            response = client.post(
                "/auth/validate", json={"token": generate_token()}, headers=headers
            )
            assert response.json()["reason"] == "unknown"
        # Not believed: still the same client, whatever it claims.
        forged = {"X-Forwarded-For": "203.0.113.3"}
        assert_throttled(
            client.post("/auth/validate", json={"token": generate_token()}, headers=forged)
        )

    proxy = address()
    with running_server(backend, env={**env, "TRUSTED_PROXIES": f"{proxy}, 10.0.0.0/8"}) as server:
        with client_from(server, proxy, **{"X-Forwarded-For": "198.51.100.7"}) as via_proxy:
            for _ in range(2):
                assert validate(via_proxy, generate_token())["reason"] == "unknown"
            assert_throttled(check(via_proxy, generate_token()))
        with client_from(server, proxy, **{"X-Forwarded-For": "198.51.100.8"}) as neighbour:
            assert validate(neighbour, generate_token())["reason"] == "unknown"
        # From a peer that is no trusted proxy, the header is not believed: this
        # client is its own address, not the throttled one it names.
        with client_from(server, address(), **{"X-Forwarded-For": "198.51.100.7"}) as liar:
            assert validate(liar, generate_token())["reason"] == "unknown"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("THROTTLE_VALIDATION_FAILURES", "lots"),
        ("THROTTLE_ADMIN_FAILURES", "0/minute"),
        ("TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal"),
        ("AUDIT_FAILURE_WINDOW", "0"),
    ],
)
def test_nonsense_settings_are_refused_at_start_up(name: str, value: str) -> None:
    from pydantic import ValidationError

    from amplify_auth_server.config import Settings

    with pytest.raises(ValidationError) as refused:
        Settings(**{name.lower(): value})  # type: ignore[arg-type]
    assert name.lower() in str(refused.value)


def test_the_in_process_counts_drop_the_windows_that_ended() -> None:
    import time

    from amplify_auth_server.throttle import LoopMemoryStorage

    storage = LoopMemoryStorage()
    assert [storage.incr("client", 60) for _ in range(3)] == [1, 2, 3]
    assert storage.incr("other", 600) == 1
    storage.sweep(time.time() + 61)
    # The ended window is gone, memory and all; the one still open is kept.
    assert "client" not in storage.storage
    assert "client" not in storage.expirations
    assert storage.get("other") == 1
    assert storage.incr("client", 60) == 1


@pytest.mark.anyio
async def test_a_client_past_its_sign_in_budget_is_not_let_try_again() -> None:
    from amplify_auth_server.errors import TooManyFailures
    from amplify_auth_server.metrics import Metrics
    from amplify_auth_server.throttle import Budgets, FailureThrottle

    budgets = Budgets.parse(
        validation="300/minute", malformed="3000/minute", admin="20/minute", signin="3/minute"
    )
    throttle = FailureThrottle(budgets, metrics=Metrics())
    for _ in range(3):
        assert await throttle.allows("signin", "10.0.0.1")
        await throttle.failed("signin", "10.0.0.1")
    # Asking counts nothing: the answer stays the same however often it is asked.
    assert [await throttle.allows("signin", "10.0.0.1") for _ in range(3)] == [False] * 3
    assert await throttle.allows("signin", "10.0.0.2")  # another client is not held back
    assert await throttle.allows("admin", "10.0.0.1")  # nor this client's other budgets
    with pytest.raises(TooManyFailures):
        await throttle.failed("signin", "10.0.0.1")
