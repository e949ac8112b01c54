"""OpenTelemetry for the SDK: a span per call that leaves the process, metrics read on demand.

With the ``[otel]`` extra (``opentelemetry-api``) installed:

- **spans**: one per request to the auth server, that is a validation that
  missed the cache (``amplify_auth.validate``) or a management call
  (``amplify_auth.create_token``, ``amplify_auth.revoke_token``, ...). They
  carry the server's address, the HTTP method, the answer's status, the
  number of attempts and, for calls about one token, its id; never a raw
  token, never a request body.
- **metrics**: ``amplify_auth.client.cache.hits``, ``.misses``,
  ``.coalesced``, ``.errors`` and ``.stale`` (observable counters) and
  ``amplify_auth.client.subscription.live`` (1 while the revocation stream
  is live), one series per client (attribute ``server.address``).

Why this costs a cache hit nothing: nothing here runs on a hit. The metrics
are observed (the exporter's callback reads ``cache_stats()`` of every live
client when it collects), so the hit path keeps its own counters and no
instrument is touched per request; spans exist only where a request leaves
the process anyway, a millisecond's work beside which a no-op span is noise.
Without the extra this module is a flag set to False at import, and the
calls below return at once; without a configured OpenTelemetry SDK the API's
spans and instruments are its own no-ops.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

try:
    from opentelemetry import metrics, trace
except ImportError:  # the [otel] extra is not installed
    AVAILABLE = False
else:
    AVAILABLE = True

if TYPE_CHECKING:
    from amplify_auth_client._api import Call
    from amplify_auth_client._base import BaseAuthClient

#: The instrumentation scope's name, for spans and metrics alike.
SCOPE: Final = "amplify_auth_client"

_clients: weakref.WeakSet[BaseAuthClient] = weakref.WeakSet()
_registered = False
_lock = threading.Lock()


@contextmanager
def call_span(call: Call[Any], where: str) -> Iterator[None]:
    """A span around one call to the auth server (its retries included), made current."""
    if not AVAILABLE:
        yield
        return
    tracer = trace.get_tracer(SCOPE)
    with tracer.start_as_current_span(
        f"amplify_auth.{call.name}", kind=trace.SpanKind.CLIENT
    ) as span:
        span.set_attribute("server.address", where)
        span.set_attribute("http.request.method", call.method)
        if call.forget is not None:
            span.set_attribute("amplify_auth.token_id", call.forget)
        yield


def answered(status: int, attempts: int) -> None:
    """The status the call ended with, on its span (the current one: see :func:`call_span`)."""
    if AVAILABLE:
        span = trace.get_current_span()
        span.set_attribute("http.response.status_code", status)
        span.set_attribute("amplify_auth.attempts", attempts)


def watch(client: BaseAuthClient) -> None:
    """Report ``client``'s cache and subscription in the metrics, as long as it lives."""
    if not AVAILABLE:
        return
    global _registered
    with _lock:
        _clients.add(client)
        if _registered:
            return
        _registered = True
    meter = metrics.get_meter(SCOPE)
    for field in ("hits", "misses", "coalesced", "errors", "stale"):
        meter.create_observable_counter(
            f"amplify_auth.client.cache.{field}",
            callbacks=[_observer(field)],
            description=f"validations counted as {field} by the SDK's cache",
        )
    meter.create_observable_gauge(
        "amplify_auth.client.subscription.live",
        callbacks=[_live],
        description="1 while the client's revocation stream is live, else 0",
    )


def _observer(field: str) -> Any:
    def observe(options: Any) -> Iterable[Any]:
        for client in list(_clients):
            yield metrics.Observation(
                getattr(client.cache_stats(), field), {"server.address": client.base_url}
            )

    return observe


def _live(options: Any) -> Iterable[Any]:
    for client in list(_clients):
        stats = client.cache_stats()
        yield metrics.Observation(
            1 if stats.subscribed else 0,
            {"server.address": client.base_url, "amplify_auth.subscription": stats.subscription},
        )
