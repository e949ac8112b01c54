"""Usage reports: this client's cache hits, sent to the server in bulk.

The server counts every validation it answers, but a cache hit never
reaches it; without these reports, a token used all day from a warm cache
would look unused, and ``revoke --unused-for 90d`` would revoke it. So
every ``usage_report_interval`` seconds (60 by default) a daemon thread
takes the hits since the last report from the cache's own counts
(:meth:`~amplify_auth_client._cache.ValidationCache.harvest`: a hit does no
work for this) and sends them as ``POST /auth/usage``, by token hash, at
most ``MAX_USAGE_HITS`` entries per request. A miss is not reported: the
server answered it, and counted it then.

Never on the validation path, bounded, and never piled up: a report that
fails is retried once, then dropped (its hits are lost, the next report's
arrive). ``close()`` sends a last one. A forked child starts over: the
parent reports the hits made before the fork. Under :func:`set_testing`
no thread runs; ``close()`` still reports, so the pytest plugin's fake sees
the hits. A server without the endpoint (404, 405) is not asked again.

No admin token is sent: a hash names a token without being one (see the
server's docs/security.md). Nothing here sees a raw token.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

import httpx

from amplify_auth_client._cache import ValidationCache
from amplify_auth_client.contract import MAX_USAGE_COUNT, MAX_USAGE_HITS

logger = logging.getLogger("amplify_auth_client.usage")

USAGE_PATH: Final = "/auth/usage"
#: Attempts per batch: one retry, then the batch is dropped.
ATTEMPTS: Final = 2
#: How long closing a client waits for the thread to end.
STOP_TIMEOUT: Final = 5.0


class UsageReporter:
    """One client's reports of its cache hits, run by a thread of its own (or on demand)."""

    def __init__(
        self,
        cache: ValidationCache[Any],
        *,
        http_options: dict[str, Any],
        interval: float,
        transport: httpx.BaseTransport | None = None,
        threaded: bool = True,
    ) -> None:
        self._cache = cache
        self._http_options = http_options
        self._transport = transport
        self.interval = interval
        self._threaded = threaded
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._http: httpx.Client | None = None
        #: False once the server said it has no such endpoint.
        self._supported = True
        #: Entries delivered, and dropped after a failed retry (for tests and stats).
        self.sent = self.dropped = 0

    def start(self) -> None:
        """Start the thread, once (not under set_testing, not after :meth:`stop`)."""
        with self._mutex:
            if not self._threaded or self._thread is not None or self._stopping.is_set():
                return
            self._thread = threading.Thread(
                target=self._main, name="amplify-auth-usage", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT, *, report: bool = True) -> None:
        """End the thread; with ``report``, send what was counted since the last report."""
        with self._mutex:
            self._stopping.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if report:
            self.report()
        if self._http is not None:
            self._http.close()
            self._http = None

    def after_fork(self) -> bool:
        """In a forked child: no thread (it stayed in the parent), no pool; start on demand.
        Whether the parent's thread was running (then the child's starts with its next
        answer)."""
        running = self._thread is not None and not self._stopping.is_set()
        self._mutex = threading.Lock()
        self._thread = None
        self._stopping = threading.Event()
        # Not closed: closing could write to sockets the parent still uses.
        self._http = None
        return running

    def _main(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.report()
            except Exception:  # the thread must outlive any one failure
                logger.exception("usage report failed")

    def report(self) -> int:
        """Send the hits since the last report now; how many entries the server took."""
        hits = self._cache.harvest()
        if not hits or not self._supported:
            return 0
        entries = [
            {"token_hash": key, "count": min(count, MAX_USAGE_COUNT)} for key, count in hits.items()
        ]
        delivered = 0
        for start in range(0, len(entries), MAX_USAGE_HITS):
            batch = entries[start : start + MAX_USAGE_HITS]
            if self._send(batch):
                delivered += len(batch)
            else:
                self.dropped += len(batch)
        self.sent += delivered
        return delivered

    def _send(self, batch: list[dict[str, Any]]) -> bool:
        for _ in range(ATTEMPTS):
            if not self._supported:
                return False
            try:
                response = self._client().post(USAGE_PATH, json={"hits": batch})
            except Exception as exc:  # any transport's failure: close() must not fail for it
                logger.debug("usage report not sent (%s)", type(exc).__name__)
                continue
            if response.is_success:
                return True
            if response.status_code in (404, 405):
                logger.info("the auth server takes no usage reports; not sending more")
                self._supported = False
                return False
            logger.debug("usage report refused: HTTP %d", response.status_code)
        return False

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(transport=self._transport, **self._http_options)
        return self._http
