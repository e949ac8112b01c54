"""Bounded retries: which failures are retried, how long to wait, and when to give up.

Retried: :class:`httpx.TransportError` (connection refused or reset,
timeouts, protocol errors) and HTTP 502, 503 and 504, the answers of a
server or proxy that is restarting or overloaded. A 4xx is never retried:
the same request would get the same answer. Nor are the transport errors
that say *this client* cannot send the request (:data:`LOCAL`): a header
value h11 refuses, a URL scheme no transport speaks.

A call that is not idempotent (create, extend) is repeated only when the
request surely never left: the connection was never made, or no pooled
connection came free (:data:`NOT_SENT`). Any answer, even a 503, means it
was sent, and a 503 can come after the server acted (a proxy that lost the
connection, a commit that failed late); after a read timeout the change may
have happened too. A second attempt could mint a second token or extend twice.

Waits use exponential backoff with full jitter (a uniform draw between zero
and ``initial * 2**retry``, capped), so that clients that failed together do
not come back together. Two bounds apply: ``max_retries`` and a total
``deadline``: no retry starts past it, and each attempt's timeouts are cut
to what is left of it (:meth:`Attempts.remaining`), so a call ends within
about the deadline. A server's ``Retry-After`` (in seconds) lengthens a
wait, up to the cap.

:func:`~amplify_auth_client.testing.set_testing` makes every wait zero, as
stamina's switch does, so that tests of outages run instantly while still
counting attempts.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import uniform
from time import monotonic
from typing import Final

import httpx

from amplify_auth_client._options import DEFAULT_RETRY_INITIAL_WAIT, DEFAULT_RETRY_MAX_WAIT
from amplify_auth_client._testing import TESTING

RETRIABLE_STATUS: Final = frozenset({502, 503, 504})
#: Errors raised before any byte of the request left: always safe to repeat.
NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
#: Errors of this side, not of the network: the next attempt would fail alike.
LOCAL: Final = (httpx.LocalProtocolError, httpx.UnsupportedProtocol)


def _retry_after(response: httpx.Response) -> float | None:
    # Only the delta-seconds form: the HTTP-date form needs a trusted clock
    # shared with the server, and the server here only ever sends seconds.
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The limits every call of one client shares."""

    max_retries: int
    deadline: float
    initial_wait: float = DEFAULT_RETRY_INITIAL_WAIT
    max_wait: float = DEFAULT_RETRY_MAX_WAIT

    def start(self, *, idempotent: bool) -> Attempts:
        """The retry budget of one call, starting now."""
        return Attempts(self, idempotent=idempotent)


class Attempts:
    """One call's retry state: each ``retry_after_*`` says how long to wait, or None to stop."""

    __slots__ = ("_idempotent", "_policy", "_started", "attempt")

    def __init__(self, policy: RetryPolicy, *, idempotent: bool) -> None:
        self._policy = policy
        self._idempotent = idempotent
        self._started = monotonic()
        #: The number of the attempt in progress, from 1.
        self.attempt = 1

    def retry_after_error(self, exc: httpx.HTTPError) -> float | None:
        """After an httpx error: the wait before the next attempt, or None to give up."""
        if not isinstance(exc, httpx.TransportError) or isinstance(exc, LOCAL):
            return None  # e.g. a decoding error: the server answered; again won't help
        if not self._idempotent and not isinstance(exc, NOT_SENT):
            return None
        return self._next(None)

    def retry_after_response(self, response: httpx.Response) -> float | None:
        """After a response: the wait before the next attempt, or None to keep this answer."""
        if response.status_code not in RETRIABLE_STATUS or not self._idempotent:
            return None
        return self._next(_retry_after(response))

    def remaining(self) -> float:
        """Seconds left of the call's deadline (negative once it has passed)."""
        return self._policy.deadline - (monotonic() - self._started)

    def _next(self, server_hint: float | None) -> float | None:
        policy = self._policy
        if self.attempt > policy.max_retries:
            return None
        cap = min(policy.max_wait, policy.initial_wait * 2 ** (self.attempt - 1))
        # Jitter, not a secret: the standard generator is the right tool.
        wait = uniform(0.0, cap)  # noqa: S311
        if server_hint is not None:
            wait = max(wait, min(server_hint, policy.max_wait))
        if TESTING.enabled:
            wait = 0.0
        if monotonic() - self._started + wait >= policy.deadline:
            return None
        self.attempt += 1
        return wait
