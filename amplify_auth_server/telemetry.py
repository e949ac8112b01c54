"""OpenTelemetry in the server: a span per HTTP request and per writer command.

On only when ``opentelemetry`` is installed *and* a tracer provider has been
configured when the app is built (``opentelemetry-instrument
amplify-auth-server``, or an SDK set up by the process that imports the
app): otherwise :func:`install` adds nothing, and the validation fast path
keeps every microsecond. Spans name the method and path of a request (a
token id may appear in a management path; a request body, which holds the
raw token on ``/auth/validate``, never does) and the kind of a writer command;
a command's span is the request's view of it, from the queue to the answer
(the replicas' acknowledgements included), as a child of the request's span.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

try:
    from opentelemetry import trace
except ImportError:  # the [otel] extra is not installed
    AVAILABLE = False
else:
    AVAILABLE = True

__all__ = ["Tracing", "command_span", "enabled", "install"]

SCOPE = "amplify_auth_server"
_tracer: Any = None


def enabled() -> bool:
    """Whether OpenTelemetry is installed and a real tracer provider is configured."""
    if not AVAILABLE:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def install(app: FastAPI) -> None:
    """Trace ``app``'s requests and writer commands, if :func:`enabled`."""
    global _tracer
    if not enabled():
        _tracer = None
        return
    _tracer = trace.get_tracer(SCOPE)
    app.add_middleware(Tracing)


def command_span(kind: str) -> Any:
    """A span around one command of the single writer, or nothing when tracing is off."""
    if _tracer is None:
        return nullcontext()
    return _command_span(kind)


@contextmanager
def _command_span(kind: str) -> Iterator[None]:
    with _tracer.start_as_current_span(f"command {kind}") as span:
        span.set_attribute("amplify_auth.command", kind)
        yield


class Tracing:
    """Pure ASGI: one server span per HTTP request, with its status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _tracer is None:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        with _tracer.start_as_current_span(
            f"{method} {scope['path']}", kind=trace.SpanKind.SERVER
        ) as span:
            span.set_attribute("http.request.method", method)
            span.set_attribute("url.path", scope["path"])

            async def sending(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            await self.app(scope, receive, sending)
