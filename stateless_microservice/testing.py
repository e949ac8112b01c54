"""Test a service without patching anything: its real app, against an in-memory auth server.

::

    from stateless_microservice.testing import FakeAuthServer, service_client

    def test_echo_needs_read():
        auth = FakeAuthServer()
        reader = auth.add_token("reader", ["read"])
        with service_client(MyService(), auth) as client:
            assert client.post("/echo", json={}).status_code == 401
            ok = client.post("/echo", json={}, headers={"Authorization": f"Bearer {reader.token}"})
            assert ok.status_code == 200

The app is the one :meth:`~stateless_microservice.StatelessService.create_app`
builds for production; only its auth client is wired to the
:class:`~amplify_auth_client.testing.FakeAuthServer` (same HTTP contract as
the real server). Set ``auth.available = False`` to see your service answer
503 while the auth service is down; ``auth.revoke(token_id)`` takes effect at
the next request, since the client's cache is off here unless you pass
``cache_ttl=``. It has to be: a fake server has no revocation event stream
(and the SDK keeps none under ``set_testing``), so nothing else would evict
a cached answer.

Why not Starlette's ``TestClient``: it now asks for a different HTTP package
(``httpx2``) and warns without it. This helper needs only what the SDK
already has: an ``httpx.Client`` whose transport hands each request to the
app in an event loop of its own thread (anyio's blocking portal), where the
app's lifespan, and so its auth client, live.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

from amplify_auth_client import AsyncAuthClient
from amplify_auth_client.testing import FakeAuthServer, set_testing
from stateless_microservice._service import AuthClientFactory, StatelessService

__all__ = ["FakeAuthServer", "service_client"]

#: The base URL of the client :func:`service_client` yields; no network is involved.
BASE_URL = "http://service.test"


class _PortalTransport(httpx.BaseTransport):
    """A sync transport that serves each request with the ASGI app, in the portal's loop."""

    def __init__(self, portal: BlockingPortal, app: Any) -> None:
        self._portal = portal
        self._asgi = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def send() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            forwarded = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )
            response = await self._asgi.handle_async_request(forwarded)
            content = await response.aread()
            return response.status_code, response.headers.raw, content

        status, headers, content = self._portal.call(send)
        return httpx.Response(status, headers=headers, content=content, request=request)


@contextmanager
def service_client(
    service: StatelessService,
    auth: FakeAuthServer | None = None,
    *,
    auth_client: AuthClientFactory | None = None,
    **client_options: Any,
) -> Iterator[httpx.Client]:
    """An ``httpx.Client`` on ``service``'s app, its lifespan running, its auth client
    talking to ``auth`` (a new :class:`FakeAuthServer` when None).

    ``client_options`` go to the :class:`~amplify_auth_client.AsyncAuthClient`
    (``cache_ttl`` defaults to 0 here, so that revocations in a test are seen
    at once). The SDK's retries do not wait meanwhile (``set_testing``), so an
    outage test is instant. To test against a real auth server instead, pass
    ``auth_client=`` a factory, e.g.
    :func:`~stateless_microservice.auth_client_from_environment`; under
    ``set_testing`` its revocation subscription is off unless the factory asks
    for it (``subscribe_revocations=True``), so set ``AUTH_CACHE_TTL=0`` to see
    a revocation at the next request.
    """
    if auth_client is not None:
        if auth is not None or client_options:
            raise TypeError("pass either auth_client= or a FakeAuthServer and its options")
        factory = auth_client
    else:
        server = auth if auth is not None else FakeAuthServer()
        client_options.setdefault("cache_ttl", 0)

        def factory() -> AsyncAuthClient:
            return server.async_client(**client_options)

    app = service.create_app(auth_client=factory)
    with (
        set_testing(),
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
        httpx.Client(transport=_PortalTransport(portal, app), base_url=BASE_URL) as client,
    ):
        yield client
