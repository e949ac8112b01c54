"""A revoke, an extend or clear_cache() is never undone by a validation that was in flight."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from amplify_auth_client import AsyncAuthClient, AuthClient, AuthServiceUnavailable
from amplify_auth_client.testing import FakeAuthServer

IN_A_WEEK = datetime.now(UTC) + timedelta(days=7)


class SlowValidations:
    """FakeAuthServer whose first ``held`` validation answers are held back after it
    answered (a slow network, a GC pause), until ``release`` is set."""

    def __init__(self, held: int = 1) -> None:
        self.server = FakeAuthServer()
        self.token = self.server.add_token("svc", ["read"], expires_at=IN_A_WEEK)
        self.answered = threading.Event()
        self.release = threading.Event()
        self._held = held

    def handle(self, request: httpx.Request) -> httpx.Response:
        response = self.server.handle(request)
        if request.url.path == "/auth/validate" and self._held > 0:
            self._held -= 1
            self.answered.set()
            assert self.release.wait(timeout=10)
        return response

    def client(self, **options: Any) -> AuthClient:
        return AuthClient(
            self.server.base_url,
            admin_token=self.server.admin_token,
            transport=httpx.MockTransport(self.handle),
            **options,
        )


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(work()))
    thread.start()
    return thread, out


@pytest.mark.parametrize("change", ["revoke_token", "extend_token"])
def test_an_answer_in_flight_across_a_change_is_not_cached(change: str) -> None:
    # It was fetched before the change, and once came back into the cache after
    # the client had forgotten the token: "valid" for another cache_ttl.
    slow = SlowValidations()
    auth = slow.client()
    before, _ = in_thread(lambda: auth.validate(slow.token.token))
    assert slow.answered.wait(timeout=10)
    if change == "revoke_token":
        auth.revoke_token(slow.token.token_id)
    else:
        extended = auth.extend_token(slow.token.token_id, 30)
    slow.release.set()
    before.join()
    after = auth.validate(slow.token.token)
    assert not after.cached
    if change == "revoke_token":
        assert after.reason == "revoked"
    else:
        assert after.expires_at == extended.expires_at


def test_an_answer_in_flight_across_clear_cache_is_not_cached() -> None:
    slow = SlowValidations()
    auth = slow.client()
    before, _ = in_thread(lambda: auth.validate(slow.token.token))
    assert slow.answered.wait(timeout=10)
    slow.server.revoke(slow.token.token_id)  # by another client, say
    auth.clear_cache()
    slow.release.set()
    before.join()
    after = auth.validate(slow.token.token)
    assert (after.valid, after.reason, after.cached) == (False, "revoked", False)


def test_a_validation_after_revoke_returned_never_joins_an_older_request() -> None:
    # Even without a cache: it once joined the request sent before the revoke.
    slow = SlowValidations()
    auth = slow.client(cache_size=0)
    before, _ = in_thread(lambda: auth.validate(slow.token.token))
    assert slow.answered.wait(timeout=10)
    auth.revoke_token(slow.token.token_id)
    after, out = in_thread(lambda: auth.validate(slow.token.token))
    after.join(timeout=10)
    slow.release.set()
    before.join()
    assert out
    assert out[0].reason == "revoked"
    assert slow.server.validation_requests() == 2


@pytest.mark.parametrize("lost", [False, True], ids=["answered", "answer lost"])
def test_an_answer_landing_during_the_revoke_is_forgotten_after_it(lost: bool) -> None:
    # The server acts, then the revoke's answer may be lost: forgotten anyway.
    server = FakeAuthServer()
    token = server.add_token("svc", ["read"])
    meanwhile: list[Any] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/revoke"):
            # Another thread validates while the revoke is on its way: still valid.
            thread, meanwhile[:] = in_thread(lambda: auth.validate(token.token))
            thread.join(timeout=10)
            response = server.handle(request)
            if lost:
                raise httpx.ReadTimeout("the answer was lost", request=request)
            return response
        return server.handle(request)

    auth = AuthClient(
        server.base_url,
        admin_token=server.admin_token,
        transport=httpx.MockTransport(handle),
        max_retries=0,
    )
    if lost:
        with pytest.raises(AuthServiceUnavailable):
            auth.revoke_token(token.token_id)
    else:
        auth.revoke_token(token.token_id)
    assert meanwhile
    assert meanwhile[0].valid
    assert auth.validate(token.token).reason == "revoked"


@pytest.mark.anyio
async def test_the_async_client_does_not_cache_an_answer_in_flight_across_a_revoke() -> None:
    server = FakeAuthServer()
    token = server.add_token("svc", ["read"])
    answered, release = asyncio.Event(), asyncio.Event()

    async def handle(request: httpx.Request) -> httpx.Response:
        response = server.handle(request)
        if request.url.path == "/auth/validate" and not release.is_set():
            answered.set()
            await release.wait()
        return response

    async with AsyncAuthClient(
        server.base_url, admin_token=server.admin_token, transport=httpx.MockTransport(handle)
    ) as auth:
        before = asyncio.create_task(auth.validate(token.token))
        await answered.wait()
        await auth.revoke_token(token.token_id)
        joined_late = asyncio.create_task(auth.validate(token.token))
        await asyncio.sleep(0)  # it starts, and must not join the request sent before
        release.set()
        assert (await before).valid  # asked before the revoke: the old answer is its own
        assert (await joined_late).reason == "revoked"
        after = await auth.validate(token.token)
        assert (after.reason, after.cached) == ("revoked", True)
