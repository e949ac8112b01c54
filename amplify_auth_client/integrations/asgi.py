"""ASGI: ``AuthMiddleware``, authentication in front of any ASGI app (Starlette, FastAPI, ...).

::

    from starlette.applications import Starlette
    from amplify_auth_client.integrations.asgi import AuthMiddleware, caller_of

    async def orders(request):
        return JSONResponse({"caller": caller_of(request.scope).name})

    app = AuthMiddleware(
        Starlette(routes=[Route("/orders", orders)]),
        scopes=["orders:read"],
        public=["/health", "/docs*"],
    )

Every HTTP request and WebSocket handshake to a path not listed in
``public`` needs a token holding ``scopes``; the app behind sees the
:class:`~amplify_auth_client.Caller` in ``scope["amplify_auth.caller"]``
(:func:`caller_of`). A refusal is the core's: status, ``WWW-Authenticate``
and the JSON body, sent before the app is called; a WebSocket handshake gets
the same HTTP answer where the server offers ASGI's
``websocket.http.response`` extension (uvicorn does), and is otherwise
closed (1008, or 1013 "try again later" when the auth service is down).
``public`` entries are exact paths, or prefixes ending with ``*``.

Pure ASGI, no framework: nothing to install, and nothing between the
server and the app but one dictionary lookup and a cache hit. One policy per
middleware; for scopes per route, use the FastAPI dependency, or one
middleware per mounted sub-app. The lifespan passes through; on shutdown the
middleware closes the async client it used in that loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any, Final

from amplify_auth_client import Authenticator, Caller, OnOutage, Policy, Refusal

__all__ = ["CALLER_KEY", "AuthMiddleware", "caller_of"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where the middleware leaves the caller in the ASGI scope.
CALLER_KEY: Final = "amplify_auth.caller"
_AUTHORIZATION: Final = b"authorization"
_JSON: Final = [(b"content-type", b"application/json")]


def caller_of(scope: Scope) -> Caller:
    """The caller :class:`AuthMiddleware` authenticated for this request.

    A KeyError means the request did not go through the middleware, or its
    path is public: a programming error, not the caller's.
    """
    caller: Caller = scope[CALLER_KEY]
    return caller


class AuthMiddleware:
    """Authenticate every request to ``app`` but the ``public`` paths.

    ``scopes``, ``max_staleness``, ``on_outage`` and ``outage_grace`` are the
    :class:`~amplify_auth_client.Policy` every protected path gets; ``auth``
    the :class:`~amplify_auth_client.Authenticator` (default: the process's).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        scopes: Sequence[str] = (),
        public: Iterable[str] = (),
        max_staleness: float | None = None,
        on_outage: OnOutage = "deny",
        outage_grace: float | None = None,
        auth: Authenticator | None = None,
    ) -> None:
        self.app = app
        self.policy = Policy(
            scopes=scopes,
            max_staleness=max_staleness,
            on_outage=on_outage,
            outage_grace=outage_grace,
        )
        self.auth = auth
        entries = list(public)
        for entry in entries:
            if not isinstance(entry, str) or not entry.startswith("/"):
                raise ValueError(f"public path {entry!r} must start with '/'")
        self.public = frozenset(e for e in entries if not e.endswith("*"))
        self.public_prefixes = tuple(e[:-1] for e in entries if e.endswith("*"))

    def is_public(self, path: str) -> bool:
        """Whether ``path`` is served without a token."""
        return path in self.public or path.startswith(self.public_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._closing(send))
            return
        if kind not in ("http", "websocket") or self.is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        values = [
            value.decode("latin-1") for name, value in scope["headers"] if name == _AUTHORIZATION
        ]
        auth = self.auth or Authenticator.default()
        found = await auth.authenticate_async(values, self.policy)
        if isinstance(found, Refusal):
            if kind == "http":
                await _send_refusal(found, send, "http.response")
            elif "websocket.http.response" in scope.get("extensions", {}):
                await _send_refusal(found, send, "websocket.http.response")
            else:  # the server cannot send a response to a handshake: close it
                await send(
                    {"type": "websocket.close", "code": 1013 if found.status == 503 else 1008}
                )
            return
        scope[CALLER_KEY] = found
        await self.app(scope, receive, send)

    def _closing(self, send: Send) -> Send:
        """``send`` for the lifespan, closing this loop's client just before shutdown completes."""

        async def closing(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await (self.auth or Authenticator.default()).aclose()
            await send(message)

        return closing


async def _send_refusal(refusal: Refusal, send: Send, kind: str) -> None:
    body = refusal.json()
    headers = [
        *_JSON,
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in refusal.headers.items()),
    ]
    await send({"type": f"{kind}.start", "status": refusal.status, "headers": headers})
    await send({"type": f"{kind}.body", "body": body})
