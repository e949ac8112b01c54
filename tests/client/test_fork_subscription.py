"""A child forked while its parent's revocation stream ran starts a stream of its own
with its first answer, a cache hit included: the parent's stream vouched for the
entries the child inherited, and no longer does."""

from __future__ import annotations

import asyncio
import os

import pytest

from amplify_auth_client import AsyncAuthClient, AuthClient, generate_token
from tests.client.support import in_child
from tests.client.test_fork import url  # a real server in a process of its own

__all__ = ["url"]  # a fixture, used by name

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform"),
    pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),
]


def test_a_sync_clients_child_subscribes_on_a_cache_hit(url: str) -> None:
    with AuthClient(url, cache_ttl=600, subscribe_revocations=True) as client:
        token = generate_token()
        client.validate(token)
        assert client.cache_stats().subscription != "idle"

        def child() -> str:
            before = client.cache_stats().subscription
            hit = client.validate(token)
            return f"{before} {hit.cached} {client.cache_stats().subscription != 'idle'}"

        assert in_child(child) == "idle True True"


def test_an_async_clients_child_subscribes_on_a_cache_hit(url: str) -> None:
    token = generate_token()
    client = AsyncAuthClient(url, cache_ttl=600, subscribe_revocations=True)

    async def hit() -> str:
        before = client.cache_stats().subscription
        result = await client.validate(token)
        return f"{before} {result.cached} {client.cache_stats().subscription != 'idle'}"

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(client.validate(token))  # in the parent's loop
        assert client.cache_stats().subscription != "idle"
        # The child runs a loop of its own; the client is new to it.
        assert in_child(lambda: asyncio.run(hit())) == "idle True True"
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
