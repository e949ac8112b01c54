"""A slow Redis (up, answering late) costs validation one budget a second, not a round trip
each, and does not cut the event stream's subscribers off.

Redis sits behind a proxy that adds 250 ms to every chunk either way: a round
trip 500 ms slower, the case that made validation take up to five round trips
and dropped every subscriber again and again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from amplify_auth_client import generate_token
from tests.server.conftest import create, validate
from tests.support.events import EventStream
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.services import TcpProxy, fresh_database, private_redis

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

DELAY = 0.25


@pytest.fixture
def slow_link(tmp_path: Path) -> Iterator[tuple[ServerProcess, TcpProxy]]:
    """A server whose Redis is behind a proxy, fast until the test slows it."""
    with private_redis() as own, fresh_database() as url:
        proxy = TcpProxy(own.port)
        try:
            env = {"REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}
            with running_server(Backend("postgres", tmp_path, url), env=env) as server:
                yield server, proxy
        finally:
            proxy.close()


def counter(server: ServerProcess, outcome: str) -> float:
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    pattern = rf'amplify_auth_cache_requests_total{{outcome="{outcome}",tier="redis"}} (\S+)'
    found = re.search(pattern, metrics)
    return float(found[1]) if found else 0.0


def test_a_slow_redis_costs_validations_one_budget_not_a_round_trip_each(
    slow_link: tuple[ServerProcess, TcpProxy],
) -> None:
    server, proxy = slow_link
    with server.client() as admin:
        known = [create(admin)["token"] for _ in range(5)]
        proxy.delay = DELAY
        slow_before, skipped_before = counter(server, "slow"), counter(server, "skipped")
        # Distinct unknown tokens: each a miss of every cache tier.
        answers = [validate(admin, generate_token())["reason"] for _ in range(40)]
        answers += [validate(admin, token)["valid"] for token in known]
    assert answers == ["unknown"] * 40 + [True] * 5
    slow = counter(server, "slow") - slow_before
    skipped = counter(server, "skipped") - skipped_before
    # Without the budget every miss waited for Redis twice (read, then the
    # write-back): 90 slow calls. With it, one abandoned call a second at most
    # leaves the rest to the database.
    assert 1 <= slow <= 10
    assert skipped >= 70
    assert "Traceback" not in server.log()


def test_a_slow_redis_does_not_cut_the_event_stream(
    slow_link: tuple[ServerProcess, TcpProxy],
) -> None:
    server, proxy = slow_link
    with server.client() as admin, EventStream(server.base_url, timeout=20) as stream:
        stream.until("ready")
        proxy.delay = DELAY
        # Each blocking read of the stream now takes 500 ms + 500 ms of link:
        # past the socket timeout the reader had, which ended every stream.
        for _ in range(3):
            created = create(admin)
            admin.post(f"/auth/tokens/{created['token_id']}/revoke").raise_for_status()
            event = stream.next()
            assert event.kind == "revoked"  # the same stream: no reset, no reconnection
            assert validate(admin, created["token"])["reason"] == "revoked"
        log = server.log()
    assert "lost the event stream" not in log
    assert "Traceback" not in log
