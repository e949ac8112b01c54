"""Concurrent validations of one uncached token share one request, its answer and its failure."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import respx

from amplify_auth_client import AsyncAuthClient, AuthClient, AuthServiceUnavailable
from amplify_auth_client._cache import Answer
from tests.client.support import BASE_URL, valid

THREADS = 50
TASKS = 100


def count_joins(client: AuthClient, expected: int) -> threading.Event:
    """An event set once ``expected`` validations have joined the cache's in-flight table."""
    joined = threading.Event()
    original = client._cache.join
    lock = threading.Lock()
    seen = 0

    def join(*args: Any) -> Any:
        nonlocal seen
        outcome = original(*args)
        with lock:
            seen += 1
            if seen == expected:
                joined.set()
        return outcome

    client._cache.join = join  # type: ignore[method-assign,assignment]
    return joined


def run_threads(count: int, work: Callable[[int], Any]) -> list[Future[Any]]:
    """``work(i)`` in ``count`` threads at once; their futures, in order of ``i``."""
    start = threading.Barrier(count)

    def together(i: int) -> Any:
        start.wait()  # every thread misses at the same moment
        return work(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return [pool.submit(together, i) for i in range(count)]


def test_fifty_threads_make_one_request(api: respx.MockRouter, token: str) -> None:
    client = AuthClient(BASE_URL)
    joined = count_joins(client, THREADS)

    def slow_answer(request: httpx.Request) -> httpx.Response:
        # Hold the answer until every thread has asked, so all of them coalesce.
        assert joined.wait(timeout=10)
        return valid(["read", "write"])

    route = api.post("/auth/validate").mock(side_effect=slow_answer)
    scopes = [["read"], ["admin"]]
    futures = run_threads(THREADS, lambda i: client.validate(token, scopes[i % 2]))
    results = [f.result() for f in futures]
    assert route.call_count == 1
    # One answer, judged for each caller's own scopes.
    assert [r.valid for r in results] == [i % 2 == 0 for i in range(THREADS)]
    assert {r.missing_scopes for r in results[1::2]} == {("admin",)}
    assert not any(r.cached for r in results)
    stats = client.cache_stats()
    assert (stats.misses, stats.coalesced, stats.requests, stats.hits) == (50, 49, 1, 0)


def test_fifty_threads_share_one_failure(api: respx.MockRouter, token: str) -> None:
    client = AuthClient(BASE_URL, max_retries=2)
    joined = count_joins(client, THREADS)

    def refuse(request: httpx.Request) -> httpx.Response:
        joined.wait(timeout=10)
        raise httpx.ConnectError("connection refused", request=request)

    route = api.post("/auth/validate").mock(side_effect=refuse)
    futures = run_threads(THREADS, lambda _: client.validate(token))
    errors = [future.exception() for future in futures]
    assert all(isinstance(e, AuthServiceUnavailable) for e in errors)
    assert route.call_count == 3  # one request's attempts, not fifty requests'
    # Each its own error, with the one cause: a single shared exception, raised
    # in fifty threads, once carried all their frames.
    assert len({id(e) for e in errors}) == THREADS
    assert len({id(e.__cause__) for e in errors}) == 1
    assert all(isinstance(e.__cause__, httpx.ConnectError) for e in errors)
    assert max(traceback_length(e) for e in errors) < 10
    assert {str(e) for e in errors} == {str(errors[0])}
    stats = client.cache_stats()
    assert (stats.errors, stats.coalesced) == (1, 49)
    # The failure is not remembered: the next validation asks again.
    route.side_effect = None
    route.return_value = valid()
    assert client.validate(token).valid


def test_a_late_thread_takes_the_landed_answer(api: respx.MockRouter, token: str) -> None:
    # It missed before the answer landed, and joins after the flight ended.
    client = AuthClient(BASE_URL)
    route = api.post("/auth/validate").mock(return_value=valid())
    key = client._cache.lookup(token, ())
    assert isinstance(key, str)
    client.validate(token)
    late = client._cache.join(key, ["read"], Future)
    assert not isinstance(late, tuple)
    assert late.valid
    assert late.cached
    assert route.call_count == 1


@pytest.mark.anyio
async def test_hundred_tasks_make_one_request(api: respx.MockRouter, token: str) -> None:
    client = AsyncAuthClient(BASE_URL)
    release = asyncio.Event()

    async def slow_answer(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return valid(["read"])

    route = api.post("/auth/validate").mock(side_effect=slow_answer)
    scopes = [["read"], ["write"]]
    tasks = [asyncio.create_task(client.validate(token, scopes[i % 2])) for i in range(TASKS)]
    # Each task joins the flight in its first step, before the fetch can answer.
    await all_joined(client, TASKS)
    release.set()
    results = await asyncio.gather(*tasks)
    assert route.call_count == 1
    assert [r.valid for r in results] == [i % 2 == 0 for i in range(TASKS)]
    stats = client.cache_stats()
    assert (stats.misses, stats.coalesced, stats.requests) == (100, 99, 1)
    assert client._cache._inflight == {}
    await client.aclose()


@pytest.mark.anyio
async def test_hundred_tasks_share_one_failure(api: respx.MockRouter, token: str) -> None:
    client = AsyncAuthClient(BASE_URL, max_retries=1)
    route = api.post("/auth/validate").mock(side_effect=httpx.ConnectTimeout("timed out"))
    results = await asyncio.gather(
        *(client.validate(token) for _ in range(TASKS)), return_exceptions=True
    )
    assert all(isinstance(r, AuthServiceUnavailable) for r in results)
    assert len({id(r) for r in results}) == TASKS
    assert max(traceback_length(r) for r in results) < 10
    assert route.call_count == 2
    assert client.cache_stats().errors == 1
    await client.aclose()


@pytest.mark.anyio
async def test_a_cancelled_waiter_does_not_cancel_the_others(
    api: respx.MockRouter, token: str
) -> None:
    client = AsyncAuthClient(BASE_URL)
    release = asyncio.Event()

    async def slow_answer(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return valid()

    route = api.post("/auth/validate").mock(side_effect=slow_answer)
    first = asyncio.create_task(client.validate(token))  # this one starts the fetch
    second = asyncio.create_task(client.validate(token))
    await all_joined(client, 2)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    release.set()
    assert (await second).valid
    assert route.call_count == 1
    assert client.cache_stats().size == 1
    await client.aclose()


async def all_joined(client: AsyncAuthClient, expected: int) -> None:
    """Wait, one loop turn at a time, until ``expected`` validations have counted a miss."""
    for _ in range(1000):
        if client.cache_stats().misses >= expected:
            return
        await asyncio.sleep(0)  # a turn of the loop, not a delay
    raise AssertionError(f"only {client.cache_stats().misses} of {expected} joined")


def test_answers_are_shared_objects_between_waiters() -> None:
    # The in-flight future carries the server's answer, judged by each waiter.
    answer = Answer(True, ("read",), "tok_0123456789abcdef", "ci", None, None)
    assert answer.judge(["read"], answer.fresh) is answer.fresh
    assert answer.judge(["write"], answer.fresh).missing_scopes == ("write",)


def traceback_length(error: BaseException) -> int:
    entries, tb = 0, error.__traceback__
    while tb is not None:
        entries, tb = entries + 1, tb.tb_next
    return entries


def test_an_interrupted_fetcher_never_leaves_its_waiters_waiting(
    api: respx.MockRouter, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # KeyboardInterrupt between ending the flight and completing its future
    # once left every waiter blocked for good.
    client = AuthClient(BASE_URL)
    joined = count_joins(client, 2)
    waiter: list[threading.Thread] = []
    results: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        # The caller below fetches; a second thread joins its flight meanwhile.
        thread = threading.Thread(target=lambda: results.append(client.validate(token)))
        thread.daemon = True  # should it hang, it must not hang the test run
        thread.start()
        waiter.append(thread)
        assert joined.wait(timeout=10)
        return valid()

    api.post("/auth/validate").mock(side_effect=answer)
    settle = client._cache.settle

    def interrupted(*args: Any) -> None:
        settle(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(client._cache, "settle", interrupted)
    with pytest.raises(KeyboardInterrupt):
        client.validate(token)
    waiter[0].join(timeout=5)
    assert not waiter[0].is_alive()
    assert results
    assert results[0].valid


def test_a_waiter_gives_up_on_a_flight_that_never_ends(token: str) -> None:
    client = AuthClient(BASE_URL, retry_deadline=0.05)
    key = client._cache.lookup(token, ())
    assert isinstance(key, str)
    client._cache.join(key, (), Future)  # a flight whose fetcher is gone
    with pytest.raises(AuthServiceUnavailable, match=r"did not end within 0.1 s"):
        client.validate(token)


@pytest.mark.anyio
async def test_an_async_waiter_gives_up_on_a_flight_that_never_ends(token: str) -> None:
    client = AsyncAuthClient(BASE_URL, retry_deadline=0.05)
    key = client._cache.lookup(token, ())
    assert isinstance(key, str)
    client._cache.join(key, (), asyncio.get_running_loop().create_future)
    with pytest.raises(AuthServiceUnavailable, match=r"did not end within 0.1 s"):
        await client.validate(token)
    await client.aclose()
