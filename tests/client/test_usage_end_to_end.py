"""Against a real server (each backend): validations through SDK caches in two processes
are counted exactly once each, and a report lost to an outage costs only that report."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from amplify_auth_client import AuthClient
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.waiting import wait_for

FAST_FLUSH = {"USAGE_FLUSH_SECONDS": "0.2"}

# One service process: a client of its own, `count` validations of one token,
# then close() (which sends the last report). A report interval no test waits out.
_SERVICE = """
import sys
from amplify_auth_client import AuthClient
base_url, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with AuthClient(base_url, usage_report_interval=3600, subscribe_revocations=False) as auth:
    for _ in range(count):
        assert auth.validate(token, ["read"]).valid
    stats = auth.cache_stats()
    assert (stats.misses, stats.hits) == (1, count - 1), stats
"""


@pytest.fixture(scope="module")
def real(backend: Backend) -> Iterator[ServerProcess]:
    with running_server(backend, env=FAST_FLUSH) as process:
        yield process


def _create(server: ServerProcess) -> dict[str, Any]:
    with server.client() as admin:
        response = admin.post("/auth/tokens", json={"name": "svc", "scopes": ["read"]})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _total(server: ServerProcess, token_id: str) -> int:
    with server.client() as admin:
        info = admin.get(f"/auth/tokens/{token_id}").json()
    return sum(day["count"] for day in info["usage"])


def test_two_service_processes_each_validation_counted_once(real: ServerProcess) -> None:
    made = _create(real)
    services = [
        subprocess.run(
            [sys.executable, "-c", _SERVICE, real.base_url, made["token"], str(count)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        for count in (5, 8)
    ]
    for done in services:
        assert done.returncode == 0, done.stderr
    # Two misses counted by the server as it answered them, 4 + 7 hits reported.
    wait_for(lambda: _total(real, made["token_id"]) >= 13)
    assert _total(real, made["token_id"]) == 13
    assert made["token"] not in "".join(d.stdout + d.stderr for d in services)


@pytest.mark.postgres
@pytest.mark.redis
def test_two_service_processes_on_two_replicas_each_validation_counted_once(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    one, two = replicas
    made = _create(one)
    services = [
        subprocess.run(
            [sys.executable, "-c", _SERVICE, replica.base_url, made["token"], str(count)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        for replica, count in ((one, 6), (two, 9))
    ]
    for done in services:
        assert done.returncode == 0, done.stderr
    # One miss on each replica, counted there; 5 + 8 hits, each SDK's reported
    # to its own replica; each replica flushes its counts into the one database.
    wait_for(lambda: _total(two, made["token_id"]) >= 15, timeout=20)
    assert _total(one, made["token_id"]) == _total(two, made["token_id"]) == 15


def test_a_report_lost_to_an_outage_loses_that_report_only(backend: Backend) -> None:
    with running_server(backend, env=FAST_FLUSH) as server:
        made = _create(server)
        # Under set_testing (the suite's): no reporter thread; the test sends.
        client = AuthClient(server.base_url)
        reporter = client._reporter
        assert reporter is not None
        try:
            for _ in range(3):  # one miss (counted by the server), two hits
                assert client.validate(made["token"])
            server.stop()  # its shut-down flush writes the miss
            assert reporter.report() == 0  # both attempts fail: the two hits are dropped
            server.start()
            for _ in range(4):  # hits from the cache: the server never sees them
                assert client.validate(made["token"])
            assert reporter.report() == 1
        finally:
            client.close()
        wait_for(lambda: _total(server, made["token_id"]) >= 5)
        assert _total(server, made["token_id"]) == 5
        assert reporter.dropped == 1


def test_reports_need_no_admin_token_and_never_carry_one(real: ServerProcess) -> None:
    made = _create(real)
    seen: list[httpx.Request] = []

    def spy(request: httpx.Request) -> None:
        seen.append(request)

    client = AuthClient(real.base_url, admin_token=real.admin_token)
    reporter = client._reporter
    assert reporter is not None
    reporter._http_options = {**reporter._http_options, "event_hooks": {"request": [spy]}}
    try:
        client.validate(made["token"])
        client.validate(made["token"])
        assert reporter.report() == 1
    finally:
        client.close()
    (request,) = [r for r in seen if r.url.path == "/auth/usage"]
    assert "authorization" not in request.headers
    assert made["token"] not in request.content.decode()
