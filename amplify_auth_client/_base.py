"""The call engine both clients share: everything but the sending, which does no I/O.

:class:`BaseAuthClient` holds the configuration, the validation cache and the
retry policy; it builds each call of :mod:`._api` into a request, judges each
attempt's outcome (retry, give up, or read the answer with :mod:`._parse`),
and turns every failure into an exception of our tree.
:class:`~amplify_auth_client.AuthClient` and
:class:`~amplify_auth_client.AsyncAuthClient` add only the sending, the
waiting between retries, and the coalescing of concurrent misses, which need
threads or tasks respectively.

Where secrets go: the admin token goes only in the ``Authorization`` header
of management calls, never to ``/auth/validate``; it is checked when the
client is built, since h11 would put a header value it refuses (a trailing
newline) whole in its error message. Credentials in ``base_url`` leave the
URL that httpx logs and travel as HTTP Basic. Anything shaped like a token
is scrubbed from server messages before they reach an exception.
"""

from __future__ import annotations

import logging
import os
import weakref
from base64 import b64encode
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

import httpx

from amplify_auth_client import _telemetry
from amplify_auth_client._api import Call
from amplify_auth_client._cache import ValidationCache
from amplify_auth_client._config import ClientConfig
from amplify_auth_client._exceptions import (
    AdminPermissionDenied,
    AdminTokenInvalid,
    AuthConfigError,
    AuthRequestError,
    AuthServiceUnavailable,
    InvalidRequest,
    TokenConflict,
    TokenNotFound,
)
from amplify_auth_client._models import CacheStats, ValidationResult
from amplify_auth_client._options import ClientOptions, seconds
from amplify_auth_client._parse import error_body, scrub
from amplify_auth_client._retry import LOCAL, RETRIABLE_STATUS, Attempts, RetryPolicy
from amplify_auth_client._subscription import RevocationSubscription
from amplify_auth_client._testing import is_testing
from amplify_auth_client._usage import UsageReporter
from amplify_auth_client._version import __version__

#: The server's answer to a client past its budget of failures (too many bad tokens).
_THROTTLED: Final = 429

logger = logging.getLogger("amplify_auth_client")

T = TypeVar("T")

_USER_AGENT: Final = f"amplify-auth-client/{__version__}"
#: An attempt that starts with (almost) no deadline left still gets this long.
_SHORTEST_ATTEMPT: Final = 0.001
_ERRORS: Final[Mapping[int, type[AuthRequestError]]] = {
    400: InvalidRequest,
    401: AdminTokenInvalid,
    403: AdminPermissionDenied,
    404: TokenNotFound,
    409: TokenConflict,
    413: InvalidRequest,
    415: InvalidRequest,
    422: InvalidRequest,
}


@dataclass(frozen=True, slots=True)
class Wait:
    """What :meth:`BaseAuthClient._step` returns to mean "sleep this long, then retry"."""

    seconds: float


class BaseAuthClient:
    """Configuration, cache, request building and response reading for both clients."""

    #: Made by the shells' _new_http; only what both kinds of httpx client share is used here.
    _http: httpx.Client | httpx.AsyncClient
    #: Narrowed by each shell to the futures it coalesces with.
    _cache: ValidationCache[Any]

    def __init__(
        self, base_url: str | None, options: ClientOptions, *, custom_transport: bool
    ) -> None:
        self._config = config = ClientConfig.resolve(base_url, options)
        self._cache = ValidationCache(
            maxsize=config.cache_size,
            ttl=config.cache_ttl,
            negative_ttl=config.negative_cache_ttl,
            stale_if_error=config.stale_if_error,
        )
        # Bound once: the hit path then skips an attribute lookup and a bound
        # method's creation on every call.
        self._lookup = self._cache.lookup
        self._retry = RetryPolicy(max_retries=config.max_retries, deadline=config.retry_deadline)
        self._timeouts = config.timeout.as_dict()
        # How long a caller waits for the request it joined. The fetcher's
        # call ends within about retry_deadline (each attempt's timeouts are
        # cut to it), so this is a guard against a flight that never ends, not
        # a limit a working client meets.
        self._wait_limit = 2 * config.retry_deadline
        # Credentials in base_url leave the URL, which httpx logs at INFO, and
        # go in a header instead (see _headers).
        url = httpx.URL(config.base_url)
        self._basic_auth: str | None = None
        if url.userinfo:
            userpass = f"{url.username}:{url.password}".encode()
            self._basic_auth = f"Basic {b64encode(userpass).decode('ascii')}"
        self._url = url.copy_with(username=None, password=None)
        # For messages and logs.
        self._where = str(self._url.copy_with(query=None, fragment=None))
        self._http = self._new_http()
        self._subscription: RevocationSubscription | None = None
        #: Start the subscription with the next answer, even a cache hit: set in a
        #: forked child whose inherited entries the parent's stream vouched for.
        self._resubscribe = False
        if self._subscribes(config.subscribe_revocations, custom_transport):
            http_options = self._http_options()
            if self._basic_auth is not None:
                http_options["headers"]["Authorization"] = self._basic_auth
            self._subscription = RevocationSubscription(
                self._cache, http_options=http_options, where=self._where
            )
            # Collected without close(): the thread must not outlive the client.
            weakref.finalize(self, self._subscription.stop, 0)
        self._reporter = self._usage_reporter(config, custom_transport)
        _CLIENTS.add(self)
        _telemetry.watch(self)

    def _usage_reporter(self, config: ClientConfig, custom_transport: bool) -> UsageReporter | None:
        """The reporter of this client's cache hits, unless ``report_usage`` is off.

        It sends with a sync pool of its own, from its thread: through the
        network, or through a custom sync transport (the pytest plugin's
        fake); an async custom transport cannot serve it, so none is made.
        """
        transport = self._sync_transport()
        if not config.report_usage or (custom_transport and transport is None):
            return None
        http_options = self._http_options()
        if self._basic_auth is not None:
            http_options["headers"]["Authorization"] = self._basic_auth
        reporter = UsageReporter(
            self._cache,
            http_options=http_options,
            interval=config.usage_report_interval,
            transport=transport,
            threaded=not is_testing(),
        )
        # Collected without close(): the thread ends, and nothing is sent then.
        weakref.finalize(self, reporter.stop, 0, report=False)
        return reporter

    def _sync_transport(self) -> httpx.BaseTransport | None:
        """The custom transport a sync pool can use, if any (the sync shell's)."""
        return None

    @staticmethod
    def _subscribes(requested: bool | None, custom_transport: bool) -> bool:
        """Whether to keep the revocation subscription: asked, or by default.

        By default yes, unless ``transport`` replaces the network (a test
        double offers no event stream) or :func:`set_testing` is on (tests
        want no background thread talking to the server).
        """
        if requested is None:
            return not custom_transport and not is_testing()
        if requested and custom_transport:
            raise AuthConfigError(
                "subscribe_revocations=True needs the network, and a custom transport replaces "
                "it: leave subscribe_revocations unset (or False) with transport="
            )
        return requested

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where!r})"

    @property
    def base_url(self) -> str:
        """The auth server this client talks to."""
        return self._where

    def _new_http(self) -> httpx.Client | httpx.AsyncClient:
        raise NotImplementedError  # each shell makes its own kind

    def _after_fork(self) -> None:
        """In a forked child: a connection pool, cache lock and subscription of its own
        (see ``_forked``)."""
        self._cache.after_fork()
        # Hits on inherited entries come before any miss: what ran in the parent
        # (its stream, its reporter) starts again with the child's next answer.
        reporting = self._reporter is not None and self._reporter.after_fork()
        if self._subscription is not None:
            # The parent's stream kept the inherited entries honest; the child
            # answers them without a miss, so its own stream must not wait for one.
            self._resubscribe = self._subscription.after_fork()
        self._resubscribe = self._resubscribe or reporting
        if not self._http.is_closed:
            # Not closed: closing could write to sockets the parent still uses.
            _ABANDONED.append(self._http)
            self._http = self._new_http()

    def _http_options(self) -> dict[str, Any]:
        return {
            "base_url": self._url,
            "timeout": self._config.timeout,
            "headers": {"User-Agent": _USER_AGENT, "Accept": "application/json"},
            # The auth API never redirects; following one could carry the
            # admin token to wherever a misconfigured proxy points.
            "follow_redirects": False,
        }

    # -- validation ----------------------------------------------------------

    def cache_stats(self) -> CacheStats:
        """Counters of the validation cache and the state of its revocation subscription."""
        stats = self._cache.stats()
        subscription = self._subscription
        if subscription is None:
            return stats
        return replace(
            stats,
            subscription=subscription.state,
            last_event_at=subscription.last_event_at,
            events=subscription.events,
            resets=subscription.resets,
        )

    def _subscribe(self) -> None:
        """Start the revocation subscription, with the first request to the server."""
        subscription = self._subscription
        if subscription is not None and not subscription.started:
            subscription.start()
        if self._reporter is not None:
            self._reporter.start()
        self._resubscribe = False

    def _peek(
        self, token: str, required_scopes: Collection[str], max_staleness: float | None
    ) -> ValidationResult | None:
        """The cache's answer, without waiting for anything; None when only the server knows.

        What ``validate`` does before its first suspension, for callers that
        choose how to wait themselves (the integrations' core:
        ``Authenticator``). Never blocks: a hit takes no lock.
        """
        found = self._lookup(token, required_scopes, max_staleness)
        if type(found) is not ValidationResult:  # the key of a miss
            return None
        if self._resubscribe:  # a forked child's first answer (see _after_fork)
            self._subscribe()
        return found

    def clear_cache(self) -> None:
        """Forget every cached answer, e.g. after revoking tokens from this process."""
        self._cache.clear()

    # -- between calls and HTTP ----------------------------------------------

    def _headers(self, call: Call[Any]) -> dict[str, str] | None:
        if not call.admin:
            # Credentials from base_url, e.g. for a gateway in front of the
            # server; httpx would apply them to every call, and so overwrite the
            # admin token of management calls.
            return None if self._basic_auth is None else {"Authorization": self._basic_auth}
        admin_token = self._config.admin_token
        if admin_token is None:
            raise AdminTokenInvalid(
                f"{call.name} needs an admin token and none is configured",
                status_code=None,
                code="unauthorized",
            )
        return {"Authorization": f"Bearer {admin_token}"}

    def _build(self, call: Call[Any]) -> httpx.Request:
        """The request for ``call``, built once and re-sent as is by each retry."""
        headers = self._headers(call)
        if call.headers:
            headers = {**(headers or {}), **call.headers}
        try:
            return self._http.build_request(
                call.method, call.path, json=call.json, params=call.params, headers=headers
            )
        except (TypeError, ValueError) as exc:
            # E.g. a lone surrogate in a name, or a metadata value that is no string.
            raise InvalidRequest(
                f"the arguments of {call.name} cannot be sent as JSON ({type(exc).__name__})",
                status_code=None,
                code="invalid_request",
            ) from exc

    @contextmanager
    def _calling(self, call: Call[Any]) -> Iterator[tuple[httpx.Request, Attempts]]:
        """The request to send for ``call`` and its retry budget; around them, the cache's part.

        A call that changes a token (revoke, extend) makes this client forget
        the token's answers, and detach every validation in flight, both
        before it is sent (so that nothing fetched meanwhile is stored) and
        after it ends, however it ends: a revoke that timed out may still
        have happened.
        """
        request = self._build(call)
        self._forget(call)
        try:
            with _telemetry.call_span(call, self._where):
                yield request, self._retry.start(idempotent=call.idempotent)
        finally:
            self._forget(call)

    def _forget(self, call: Call[Any]) -> None:
        if call.forget_all:
            self._cache.clear()
        elif call.forget is not None:
            self._cache.forget(call.forget)

    def _before_attempt(self, call: Call[Any], request: httpx.Request, attempts: Attempts) -> None:
        """Refuse a closed client; cut this attempt's timeouts to what is left of the deadline.

        Without the cut, an attempt starting just before ``retry_deadline``
        would still run its whole ``timeout``.
        """
        if self._http.is_closed:
            raise self._closed(call)
        left = max(attempts.remaining(), _SHORTEST_ATTEMPT)
        request.extensions["timeout"] = {
            phase: left if limit is None or limit > left else limit
            for phase, limit in self._timeouts.items()
        }

    def _step(
        self, call: Call[T], attempts: Attempts, outcome: httpx.Response | Exception
    ) -> T | Wait:
        """After one attempt: how long to wait before the next, or the parsed answer; or raise ours.

        ``outcome`` is what the send returned or raised: a response, an httpx
        error, or the RuntimeError httpx raises when the client was closed
        while the call was under way. Everything else propagates unchanged.
        """
        if isinstance(outcome, httpx.Response):
            wait = attempts.retry_after_response(outcome)
            if wait is None:
                return self._read(call, outcome, attempts)
            why = f"HTTP {outcome.status_code}"
        elif isinstance(outcome, httpx.HTTPError):
            wait = attempts.retry_after_error(outcome)
            if wait is None:
                raise self._give_up(call, attempts, outcome) from outcome
            why = type(outcome).__name__
        elif isinstance(outcome, RuntimeError) and self._http.is_closed:
            raise self._closed(call) from outcome
        else:
            raise outcome
        logger.debug(
            "%s: attempt %d failed (%s); retrying in %.3fs",
            call.name,
            attempts.attempt - 1,
            why,
            wait,
        )
        return Wait(wait)

    def _closed(self, call: Call[Any]) -> AuthServiceUnavailable:
        return AuthServiceUnavailable(
            f"this {type(self).__name__} was closed, so {call.name} cannot reach the auth service; "
            "create a new client (a closed one still answers from its cache)"
        )

    def _secret(self, call: Call[Any]) -> str | None:
        return call.secret if call.secret is not None else self._config.admin_token

    def _give_up(
        self, call: Call[Any], attempts: Attempts, exc: httpx.HTTPError
    ) -> AuthServiceUnavailable:
        """The error for a call that got no response, after its last attempt."""
        what = scrub(f"{type(exc).__name__}: {exc}", self._secret(call))
        if isinstance(exc, LOCAL):
            # This side could not send it: no amount of waiting helps.
            logger.warning("%s to %s could not be sent: %s", call.name, self._where, what)
            return AuthServiceUnavailable(
                f"{call.name} could not be sent to the auth service at {self._where} ({what}); "
                "check base_url and the client's arguments"
            )
        logger.warning(
            "auth service unreachable: %s to %s failed after %d attempt(s): %s",
            call.name,
            self._where,
            attempts.attempt,
            what,
        )
        error = AuthServiceUnavailable(
            f"could not reach the auth service at {self._where} for {call.name} after "
            f"{attempts.attempt} attempt(s) ({what}); check that it runs and that base_url "
            "is right, or retry later"
        )
        error._unreachable = isinstance(exc, httpx.TransportError)
        return error

    def _read(self, call: Call[T], response: httpx.Response, attempts: Attempts) -> T:
        """The parsed body of a 2xx answer; otherwise the error from our tree, raised."""
        status = response.status_code
        _telemetry.answered(status, attempts.attempt)
        if 200 <= status < 300:
            try:
                return call.parse(response.json())
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                what = scrub(f"{type(exc).__name__}: {exc}", self._secret(call))
                raise AuthServiceUnavailable(
                    f"the server at {self._where} answered {call.name} with HTTP {status} but "
                    f"not with the auth API's JSON ({what}); check that base_url points at the "
                    "auth service and that it runs a version this client speaks",
                    status_code=status,
                ) from exc
        code, detail, errors = error_body(response, self._secret(call))
        if status >= 500 or call.fail_closed:
            raise self._refused(call, status, f"{code}: {detail}", attempts)
        if status not in _ERRORS and status != _THROTTLED:
            detail = f"{detail}; check that base_url points at the auth service"
        error_type = _ERRORS.get(status, AuthRequestError)
        raise error_type(detail, status_code=status, code=code, errors=errors)

    def _refused(
        self, call: Call[Any], status: int, what: str, attempts: Attempts
    ) -> AuthServiceUnavailable:
        """The error for a 5xx, or for any non-2xx answer to a call that fails closed."""
        if status >= 500:
            hint = "retry later"
        elif status == 404:
            hint = f"check that base_url points at the auth service: it has no {call.path}"
        elif status == _THROTTLED:
            hint = "this client is past the server's budget of failures; retry after Retry-After"
        else:
            hint = "check that base_url points at the auth service and that it runs a version "
            hint += "this client speaks"
        logger.warning(
            "auth service unavailable: %s to %s got HTTP %d after %d attempt(s)",
            call.name,
            self._where,
            status,
            attempts.attempt,
        )
        error = AuthServiceUnavailable(
            f"the auth service at {self._where} answered {call.name} with HTTP {status} "
            f"({what}) after {attempts.attempt} attempt(s); {hint}",
            status_code=status,
        )
        error._unreachable = status in RETRIABLE_STATUS
        return error

    # -- a validation's flight ----------------------------------------------

    @staticmethod
    def _per_call(max_staleness: float | None, stale_if_error: float | None) -> None:
        """Check one call's ``max_staleness`` and ``stale_if_error``: on the miss path only
        (a value no entry can satisfy always gets there, see ``ValidationCache.lookup``)."""
        if max_staleness is not None:
            seconds("max_staleness", max_staleness)
        if stale_if_error is not None:
            seconds("stale_if_error", stale_if_error)

    def _failed(
        self,
        key: str,
        required_scopes: Collection[str],
        error: BaseException,
        max_staleness: float | None = None,
        stale_if_error: float | None = None,
    ) -> ValidationResult:
        """A waiter's answer when the request it joined failed: stale if allowed, else raise.

        ``stale_if_error`` applies only when no server answered: a 500 or a
        body we cannot read is an answer, and may be the server's way of
        saying "not this token". Each waiter raises an error of its own, a
        copy of the flight's with the same cause (the httpx error, say): one
        shared exception raised in fifty threads would carry fifty threads'
        frames.
        """
        if not isinstance(error, AuthServiceUnavailable):
            error = self._flight_error(error)
        if error._unreachable:
            stale = self._cache.stale(
                key, required_scopes, max_age=max_staleness, stale_if_error=stale_if_error
            )
            if stale is not None:
                return stale
        own = AuthServiceUnavailable(str(error), status_code=error.status_code)
        own._unreachable = error._unreachable
        raise own from error.__cause__

    @staticmethod
    def _flight_error(exc: BaseException) -> AuthServiceUnavailable:
        """What the waiters of a failed validation get: always ours, the original as cause."""
        if isinstance(exc, AuthServiceUnavailable):
            return exc
        error = AuthServiceUnavailable(
            f"the validation request failed unexpectedly ({type(exc).__name__}); retry, and "
            "report it if it persists"
        )
        error.__cause__ = exc
        return error

    @staticmethod
    def _interrupted() -> AuthServiceUnavailable:
        # The fetcher was stopped (KeyboardInterrupt, a cancelled task): its waiters were not.
        return AuthServiceUnavailable("the validation request was interrupted; retry")

    def _overdue(self) -> AuthServiceUnavailable:
        return AuthServiceUnavailable(
            f"the validation request this call joined did not end within {self._wait_limit:g} s "
            "(twice retry_deadline); retry"
        )


#: Every client alive, for the fork hook below.
_CLIENTS: Final[weakref.WeakSet[BaseAuthClient]] = weakref.WeakSet()
#: In a forked child, the parent's httpx clients: kept, never used, never
#: closed, so that nothing in the child touches sockets the parent still uses.
_ABANDONED: Final[list[httpx.Client | httpx.AsyncClient]] = []


def _forked() -> None:
    """After ``fork()``, in the child: every client gets a pool and a cache lock of its own.

    Without this, a client used before a fork (a warm-up call in a
    pre-forking server's master) shares its keep-alive sockets with the
    child, and the two processes read each other's answers: the child once
    accepted an unknown token with another token's scopes. The lock may also
    have been held at the fork, and the requests in flight have no fetcher in
    the child. Cached answers stay: they are true in both processes.
    """
    for client in list(_CLIENTS):
        client._after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forked)
