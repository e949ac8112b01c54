"""Sending webhooks from the outbox: at least once, from any replica, with bounded retries.

Each replica runs one :class:`WebhookSender`. It claims due rows for a
lease (the attempt's timeout and a margin: :meth:`TokenStore.webhook_claim`,
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so that replicas share the work
and never send one row at the same time), POSTs each with its headers
signed afresh, and then:

* 2xx: delivered, the row is deleted;
* anything else (another status, a refused connection, a timeout): due again
  after an exponential backoff with jitter (``WEBHOOK_RETRY_INITIAL``
  doubling, at most an hour), until ``WEBHOOK_RETRY_HOURS`` after the event;
  an attempt failing past that gives the row up: it stays, with
  ``failed_at`` and its last error, and the log says so once.

A replica killed mid-attempt sends again once its lease ends, with the same
webhook-id: receivers deduplicate on it (at least once, not exactly once).
Redirects are not followed (a 3xx is a failure): a receiver's address is
what the operator configured, nothing else. Deliveries are not ordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import httpx

from amplify_auth_server.background import Background
from amplify_auth_server.errors import DatabaseUnavailable
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.models import PendingWebhook, utcnow
from amplify_auth_server.store import TokenStore
from amplify_auth_server.webhooks import Signer, WebhookOutbox

logger = logging.getLogger("amplify_auth_server.webhooks")

#: Deliveries one claim takes (sent side by side).
CLAIM_SIZE: Final = 32
#: The longest wait between two attempts.
MAX_BACKOFF: Final = timedelta(hours=1)
#: Added to the attempt's timeout for its lease: a slow commit of the result
#: must not let another replica send the row again meanwhile.
LEASE_MARGIN: Final = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Retries:
    """When a failed delivery is tried again, and when it is given up."""

    initial: timedelta
    horizon: timedelta

    def next_attempt(
        self, attempts: int, created_at: datetime, now: datetime, rng: random.Random
    ) -> datetime | None:
        """When attempt ``attempts + 1`` is due; None: give up.

        The wait doubles from ``initial`` (at most :data:`MAX_BACKOFF`), each
        drawn between half and all of it, so that receivers back from an
        outage are not hit by every replica's retries at once. The last
        attempt is made at the horizon itself.
        """
        deadline = created_at + self.horizon
        if now >= deadline:
            return None
        wait: timedelta = min(self.initial * 2 ** min(attempts - 1, 32), MAX_BACKOFF)
        due: datetime = now + wait * rng.uniform(0.5, 1.0)
        return min(due, deadline)


def safe_url(url: str) -> str:
    """``url`` as logged: scheme, host, port and path (a query may hold a receiver's key)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(query=None, fragment=None))


class WebhookSender(Background):
    """One replica's sender of due webhooks (see the module's docstring)."""

    task_name = "amplify-auth-webhooks"

    def __init__(
        self,
        store: TokenStore,
        outbox: WebhookOutbox,
        signer: Signer,
        metrics: Metrics,
        *,
        retries: Retries,
        timeout: float,
        interval: float,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.signer = signer
        self.metrics = metrics
        self.retries = retries
        self.timeout = timeout
        self.interval = interval
        # Jitter, not secrecy: a plain generator is what it needs.
        self._rng = rng or random.Random()  # noqa: S311
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def stop(self) -> None:
        await super().stop()
        await self._client.aclose()

    async def run(self) -> None:
        while True:
            self.outbox.due.clear()
            try:
                if await self.send_once() == CLAIM_SIZE:
                    continue  # more may be due: no wait
            except DatabaseUnavailable:
                pass  # the rows wait in the database; the next round retries
            except Exception:
                logger.exception("sending webhooks failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.outbox.due.wait(), self.interval)

    async def send_once(self) -> int:
        """Claim the due deliveries, attempt each, record each outcome: how many were claimed."""
        now = utcnow()
        lease = timedelta(seconds=self.timeout) + LEASE_MARGIN
        claimed = await self.store.webhook_claim(now, now + lease, CLAIM_SIZE)
        if claimed:
            await asyncio.gather(*(self._attempt(item) for item in claimed))
        await self._observe_backlog()
        return len(claimed)

    async def _attempt(self, item: PendingWebhook) -> None:
        error = await self._post(item)
        if error is None:
            await self.store.webhook_done(item.id, item.url)
            self.metrics.webhook_deliveries.labels(item.type, "delivered").inc()
            return
        now = utcnow()
        due = self.retries.next_attempt(item.attempts, item.created_at, now, self._rng)
        await self.store.webhook_retry(
            item.id, item.url, at=due or now, error=error, failed=due is None
        )
        if due is None:
            self.metrics.webhook_deliveries.labels(item.type, "given_up").inc()
            logger.error(
                "webhook %s (%s) to %s given up after %d attempts: %s",
                item.id,
                item.type,
                safe_url(item.url),
                item.attempts,
                error,
            )
        else:
            self.metrics.webhook_deliveries.labels(item.type, "retrying").inc()
            logger.warning(
                "webhook %s (%s) to %s failed (attempt %d), retrying at %s: %s",
                item.id,
                item.type,
                safe_url(item.url),
                item.attempts,
                due.isoformat(timespec="seconds"),
                error,
            )

    async def _post(self, item: PendingWebhook) -> str | None:
        """None if the receiver took the event, else why not (no secret in it)."""
        headers = self.signer.headers(item.id, item.body, utcnow())
        try:
            # httpx's timeout bounds each read and write; this, the whole
            # attempt, so that it ends within its lease (a receiver trickling
            # its answer would otherwise be sent the event again meanwhile).
            async with asyncio.timeout(self.timeout):
                response = await self._client.post(item.url, content=item.body, headers=headers)
        except TimeoutError:
            return "timed out"
        except httpx.HTTPError as exc:
            return type(exc).__name__
        if response.is_success:
            return None
        return f"HTTP {response.status_code}"

    async def _observe_backlog(self) -> None:
        pending, oldest, given_up = await self.store.webhook_backlog()
        self.metrics.webhook_backlog.set(pending)
        self.metrics.webhook_given_up.set(given_up)
        age = 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
        self.metrics.webhook_oldest_age.set(age)
