"""The auth clients an integration shares: one ``AuthClient`` per process, one
``AsyncAuthClient`` per event loop, built from the environment on first use.

Why per loop: an ``AsyncAuthClient`` belongs to the loop it was first used
in (its connections live there), and a process may run several (Django's
async views under a WSGI server start one per request thread; tests start
one per test). Why one per process otherwise: so that every view, route and
method of a service shares one cache, one connection pool and one
revocation subscription. The sync client survives ``fork()`` on its own (the
SDK's fork hook gives the child a pool of its own); a loop is never shared
with a child.

From the environment, as ``StatelessService`` does: ``AUTH_SERVICE_URL``,
and ``AUTH_CACHE_TTL`` seconds of cache (the SDK's default when unset).
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections.abc import Callable
from typing import Final

from amplify_auth_client._async_client import AsyncAuthClient
from amplify_auth_client._client import AuthClient
from amplify_auth_client._exceptions import AuthConfigError
from amplify_auth_client._options import DEFAULT_CACHE_TTL

#: Seconds a service may reuse a positive validation (the SDK's ``cache_ttl``)
#: while no revocation event says otherwise.
ENV_CACHE_TTL: Final = "AUTH_CACHE_TTL"

#: Builds the async client of one event loop.
AsyncClientFactory = Callable[[], AsyncAuthClient]


def cache_ttl_from_environment() -> float:
    """``AUTH_CACHE_TTL`` as seconds; the SDK's default when unset or empty."""
    raw = os.environ.get(ENV_CACHE_TTL, "").strip()
    if not raw:
        return DEFAULT_CACHE_TTL
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise AuthConfigError(
            f"{ENV_CACHE_TTL} must be a number of seconds, zero or more, got {raw!r}"
        )
    return seconds


def auth_client_from_environment() -> AsyncAuthClient:
    """The default async client: ``AUTH_SERVICE_URL``, and ``AUTH_CACHE_TTL`` seconds of cache.

    The client subscribes to the auth server's revocation events (the SDK's
    default), so a revoked token is refused within milliseconds.
    ``AUTH_CACHE_TTL`` (default: the SDK's 30 s) is the longest a revoked token
    can still be accepted while that subscription is down (the auth server
    unreachable, a proxy cutting the stream); ``0`` asks the auth service on
    every request (concurrent requests with one token still share one call).
    Raises :class:`~amplify_auth_client.AuthConfigError` naming the variable
    to fix.
    """
    return AsyncAuthClient(cache_ttl=cache_ttl_from_environment())


def sync_client_from_environment() -> AuthClient:
    """The sync twin of :func:`auth_client_from_environment`."""
    return AuthClient(cache_ttl=cache_ttl_from_environment())


class SharedClients:
    """One sync client per process, one async client per event loop, made on first use.

    ``client`` is the sync client to use (default: from the environment);
    ``async_client`` an async client to use in its one loop, or a factory
    called once per loop (default: :func:`auth_client_from_environment`).
    Clients given as instances are the caller's to close; the ones made here
    are closed by :meth:`close` / :meth:`aclose`. A loop's client holds its
    loop, so the table keeps a reference to both: a loop found closed when a
    new one asks for a client is dropped from it then.
    """

    def __init__(
        self,
        client: AuthClient | None = None,
        async_client: AsyncAuthClient | AsyncClientFactory | None = None,
    ) -> None:
        self._given = client
        self._client: AuthClient | None = client
        if isinstance(async_client, AsyncAuthClient):
            self._fixed: AsyncAuthClient | None = async_client
            self._factory: AsyncClientFactory = lambda: async_client
        else:
            self._fixed = None
            self._factory = async_client or auth_client_from_environment
        self._per_loop: dict[asyncio.AbstractEventLoop, AsyncAuthClient] = {}
        self._lock = threading.Lock()

    def sync(self) -> AuthClient:
        """The process's sync client."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = sync_client_from_environment()
                client = self._client
        return client

    def current(self) -> AsyncAuthClient:
        """The running event loop's async client (called from within that loop)."""
        if self._fixed is not None:
            return self._fixed
        loop = asyncio.get_running_loop()
        client = self._per_loop.get(loop)
        if client is None:
            with self._lock:
                client = self._per_loop.get(loop)
                if client is None:
                    for closed in [old for old in self._per_loop if old.is_closed()]:
                        del self._per_loop[closed]
                    client = self._per_loop[loop] = self._factory()
        return client

    def close(self) -> None:
        """Close the sync client made here, and forget it: the next use makes a new one."""
        with self._lock:
            client, self._client = self._client, self._given
        if client is not None and client is not self._given:
            client.close()

    async def aclose(self) -> None:
        """Close the running loop's async client made here, and forget it."""
        if self._fixed is not None:
            return
        with self._lock:
            client = self._per_loop.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def reset(self) -> None:
        """Forget every client made here (closing the sync one): the environment is read anew.

        For tests that point ``AUTH_SERVICE_URL`` elsewhere. Async clients of
        other loops cannot be closed from here (their loops may be gone);
        forgotten, they are collected with their loops.
        """
        self.close()
        with self._lock:
            self._per_loop = {}
