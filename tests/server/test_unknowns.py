"""The server's memory of unknown tokens expires on time, whatever else happens, and is bounded."""

from __future__ import annotations

import pytest

from amplify_auth_server import cache
from amplify_auth_server.cache import UNKNOWN, LocalCache, TokenState, Unknowns


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(cache.time, "monotonic", fake.monotonic)
    return fake


def digest(n: int) -> bytes:
    return n.to_bytes(32, "big")


@pytest.mark.parametrize("offset", [0.0, 3.0, 7.5, 14.999, 15.0, 29.0, 44.0])
def test_an_entry_lives_at_least_half_the_ttl_and_never_past_it(
    clock: Clock, offset: float
) -> None:
    unknowns = Unknowns(maxsize=100, ttl=30)
    clock.now += offset
    put = clock.now
    unknowns.add(digest(1))
    clock.now = put + 15 - 0.001
    assert digest(1) in unknowns
    clock.now = put + 30
    assert digest(1) not in unknowns


def test_expired_entries_go_without_any_other_traffic(clock: Clock) -> None:
    # The flaw fixed: expired entries stayed until the LRU was full.
    unknowns = Unknowns(maxsize=100_000, ttl=30)
    for n in range(1000):
        unknowns.add(digest(n))
    assert len(unknowns) == 1000
    clock.now += 31
    assert digest(0) not in unknowns
    assert len(unknowns) == 0


def test_memory_is_bounded_by_maxsize(clock: Clock) -> None:
    unknowns = Unknowns(maxsize=10, ttl=30)
    for n in range(1000):
        unknowns.add(digest(n))
        assert len(unknowns) <= 10
    assert digest(999) in unknowns


def test_putting_again_renews(clock: Clock) -> None:
    unknowns = Unknowns(maxsize=10, ttl=30)
    unknowns.add(digest(1))
    clock.now += 20
    unknowns.add(digest(1))
    clock.now += 20
    assert digest(1) in unknowns


def test_the_local_cache_forgets_unknown_tokens_on_time_and_when_they_become_known(
    clock: Clock,
) -> None:
    local = LocalCache(maxsize=100, ttl=1800, negative_ttl=30)
    key = "ab" * 32
    local.put(key, UNKNOWN)
    assert local.get(key) is UNKNOWN
    local.put(key, TokenState(version=1, token_id="tok_0123456789abcdef"))
    assert local.get(key) is not UNKNOWN
    other = "cd" * 32
    local.put(other, UNKNOWN)
    clock.now += 30
    assert local.get(other) is None
    local.put(other, UNKNOWN)
    local.evict(other)
    assert local.get(other) is None
