"""Everything the two clients share that does no I/O.

:class:`BaseAuthClient` holds the configuration, the validation cache and the
retry policy; it turns each method call into a :class:`Call` (what to send,
whether it may be repeated, how to read the answer) and each HTTP answer into
a model or an exception of our tree. :class:`~amplify_auth_client.AuthClient`
and :class:`~amplify_auth_client.AsyncAuthClient` add only the sending, the
waiting between retries, and the coalescing of concurrent misses, which need
threads or tasks respectively.

Where secrets go: the raw token to validate is sent in a POST body, never a
URL (httpx logs URLs at INFO). The admin token goes only in the
``Authorization`` header of management calls, never to ``/auth/validate``;
it is checked when the client is built, since h11 would put a header value
it refuses (a trailing newline) whole in its error message. Credentials in
``base_url`` leave the URL that httpx logs and travel as HTTP Basic.
Token ids are checked before they become part of a URL, so a raw token
passed by mistake where an id belongs is refused locally. Anything shaped like
a token is scrubbed from server messages before they reach an exception.
"""

from __future__ import annotations

import logging
import os
import re
import weakref
from base64 import b64encode
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, Generic, TypeVar, cast

import httpx

from amplify_auth_client import _cache
from amplify_auth_client._cache import Answer, ValidationCache
from amplify_auth_client._config import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_CACHE_TTL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_NEGATIVE_CACHE_TTL,
    DEFAULT_RETRY_DEADLINE,
    DEFAULT_TIMEOUT,
    ClientConfig,
)
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
from amplify_auth_client._models import (
    AuditEntry,
    CacheStats,
    CreatedToken,
    Reason,
    TokenInfo,
    TokenStatus,
    ValidationResult,
)
from amplify_auth_client._retry import LOCAL, RETRIABLE_STATUS, Attempts, RetryPolicy, is_testing
from amplify_auth_client._subscription import Subscription
from amplify_auth_client._version import __version__

logger = logging.getLogger("amplify_auth_client")

T = TypeVar("T")

_USER_AGENT: Final = f"amplify-auth-client/{__version__}"
#: An attempt that starts with (almost) no deadline left still gets this long.
_SHORTEST_ATTEMPT: Final = 0.001
_TOKEN_SHAPE: Final = re.compile(r"amp_live_[A-Za-z0-9_-]{20,}")
_TOKEN_ID: Final = re.compile(r"tok_[a-z0-9]{16}")
# The negative answers cached for negative_cache_ttl. "malformed" from the
# server means it disagrees with our format check: never cached.
_CACHEABLE: Final = frozenset({"unknown", "revoked", "expired"})
_ERRORS: Final[Mapping[int, type[AuthRequestError]]] = {
    400: InvalidRequest,
    401: AdminTokenInvalid,
    403: AdminPermissionDenied,
    404: TokenNotFound,
    409: TokenConflict,
    413: InvalidRequest,
    422: InvalidRequest,
}


def _scrub(text: str, secret: str | None = None) -> str:
    """``text`` without anything that looks like a token, nor ``secret``.

    The server never echoes a token, so this is a second line of defence: a
    proxy or a future server bug must not put one in our exception messages.
    """
    if secret:
        text = text.replace(secret, "[redacted]")
    return _TOKEN_SHAPE.sub("[redacted]", text)


# -- reading JSON: strict, because a wrong type here must not become "valid" ---


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _strs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return tuple(_str(item) for item in value)


def _bool(value: Any) -> bool:
    # Never bool(value): the string "false" is truthy, and that would fail open.
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _time(value: Any) -> datetime:
    # Python 3.11 reads the server's "…Z" suffix. A time without a zone is
    # not one the server writes, and could be any zone: refused.
    parsed = datetime.fromisoformat(_str(value))
    if parsed.tzinfo is None:
        raise ValueError("a time without a time zone")
    return parsed


def _opt_time(value: Any) -> datetime | None:
    return None if value is None else _time(value)


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return {_str(k): _str(v) for k, v in value.items()}


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _array(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected an array, got {type(value).__name__}")
    return value


def parse_answer(data: Any) -> Answer:
    """A ``/auth/validate`` body as an :class:`Answer`.

    ``valid`` is read first, strictly. A positive answer must then be the
    server's whole positive answer (see :func:`_positive`): anything less is
    a protocol error, so never valid and never cached. A negative answer
    stays a "no" even when the rest cannot be read (a newer server's richer
    ``reason``, say), but one we do not cache.
    """
    body = _object(data)
    if not _bool(body["valid"]):
        return _negative(body)
    return _positive(body)


#: Every field the server sends with ``"valid": true``, always.
_POSITIVE_FIELDS: Final = frozenset(
    {"valid", "scopes", "token_id", "name", "reason", "missing_scopes", "expires_at"}
)


def _positive(body: dict[str, Any]) -> Answer:
    """A positive answer, taken only when it is complete and consistent.

    A stub, a mock or a misconfigured proxy that answers ``{"valid": true}``
    to everything must not let every token in: each field the server always
    sends must be there, with its type; the token must be named by an id of
    the server's shape; ``reason`` must be null and ``missing_scopes`` empty
    (we asked for no scopes); and the token must not have expired already.
    """
    missing = _POSITIVE_FIELDS - body.keys()
    if missing:
        raise ValueError(f"a positive answer without {', '.join(sorted(missing))}")
    if body["reason"] is not None:
        raise ValueError("a positive answer that gives a reason")
    if _array(body["missing_scopes"]):
        raise ValueError("a positive answer with missing scopes, to a question that asked none")
    token_id = _str(body["token_id"])
    if not _TOKEN_ID.fullmatch(token_id):
        raise ValueError("a positive answer whose token_id is not a token id")
    expires_at = _opt_time(body["expires_at"])
    # The cache's wall clock, which it judges every entry's expiry by.
    if expires_at is not None and expires_at.timestamp() <= _cache.wall_time():
        raise ValueError("a positive answer for a token that has expired")
    return Answer(
        positive=True,
        scopes=_strs(body["scopes"]),
        token_id=token_id,
        name=_str(body["name"]),
        reason=None,
        expires_at=expires_at,
    )


def _negative(body: dict[str, Any]) -> Answer:
    reason = body.get("reason")
    if reason == "insufficient_scope":
        # We always ask with no scopes, so a server keeping to the contract
        # cannot say this; the answer says nothing we can rely on.
        raise ValueError("a validation that asked for no scopes was answered insufficient_scope")
    try:
        return Answer(
            positive=False,
            scopes=_strs(body.get("scopes", [])),
            token_id=_opt_str(body.get("token_id")),
            name=_opt_str(body.get("name")),
            # A reason this client does not know yet is passed on as is, but
            # not cached: we cannot tell for how long it holds.
            reason=cast(Reason | None, _opt_str(reason)),
            expires_at=_opt_time(body.get("expires_at")),
            cacheable=reason in _CACHEABLE,
        )
    except (KeyError, TypeError, ValueError, OverflowError):
        return Answer(
            positive=False,
            scopes=(),
            token_id=None,
            name=None,
            reason=cast(Reason | None, reason if isinstance(reason, str) else None),
            expires_at=None,
            cacheable=False,
        )


def parse_token_info(data: Any) -> TokenInfo:
    """A token record of the management API as a :class:`TokenInfo`."""
    body = _object(data)
    # A status this client does not know yet is passed on, not refused.
    status = _str(body["status"])
    return TokenInfo(
        token_id=_str(body["token_id"]),
        name=_str(body["name"]),
        scopes=_strs(body["scopes"]),
        status=cast(TokenStatus, status),
        created_at=_time(body["created_at"]),
        expires_at=_opt_time(body.get("expires_at")),
        revoked_at=_opt_time(body.get("revoked_at")),
        description=_opt_str(body.get("description")),
        metadata=_metadata(body.get("metadata")),
    )


def parse_created(data: Any) -> CreatedToken:
    """The answer to ``POST /auth/tokens`` as a :class:`CreatedToken`."""
    body = _object(data)
    return CreatedToken(
        token=_str(body["token"]),
        token_id=_str(body["token_id"]),
        name=_str(body["name"]),
        scopes=_strs(body["scopes"]),
        created_at=_time(body["created_at"]),
        expires_at=_opt_time(body.get("expires_at")),
        description=_opt_str(body.get("description")),
        metadata=_metadata(body.get("metadata")),
    )


def parse_audit_entry(data: Any) -> AuditEntry:
    """One audit record as an :class:`AuditEntry`."""
    body = _object(data)
    entry_id = body["id"]
    if isinstance(entry_id, bool) or not isinstance(entry_id, int):
        raise TypeError("an audit id must be an integer")
    return AuditEntry(
        id=entry_id,
        at=_time(body["at"]),
        actor_id=_str(body["actor_id"]),
        actor_name=_opt_str(body.get("actor_name")),
        action=_str(body["action"]),
        token_id=_opt_str(body.get("token_id")),
        details=_object(body.get("details", {})),
    )


def _list_of(parse: Callable[[Any], T]) -> Callable[[Any], list[T]]:
    def parse_all(data: Any) -> list[T]:
        return [parse(item) for item in _array(data)]

    return parse_all


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API call, described without sending it.

    ``idempotent`` decides which failures may be retried (see
    :mod:`amplify_auth_client._retry`); ``admin`` adds the admin token;
    ``secret`` is scrubbed from any message about this call; ``fail_closed``
    makes every non-2xx answer :class:`AuthServiceUnavailable`; ``forget``
    names a token whose cached answers the call makes wrong.
    """

    name: str
    method: str
    path: str
    parse: Callable[[Any], T]
    #: Out of repr: a validation's body holds the raw token.
    json: dict[str, Any] | None = field(default=None, repr=False)
    params: dict[str, str] | None = None
    admin: bool = True
    idempotent: bool = True
    secret: str | None = field(default=None, repr=False)
    #: Every answer but a 2xx is AuthServiceUnavailable (validation: never a 4xx error).
    fail_closed: bool = False
    #: The id of a token this call changes: the cache forgets it around the call.
    forget: str | None = None


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
        self,
        base_url: str | None = None,
        *,
        admin_token: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        negative_cache_ttl: float = DEFAULT_NEGATIVE_CACHE_TTL,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_deadline: float = DEFAULT_RETRY_DEADLINE,
        stale_if_error: float | None = None,
        subscribe_revocations: bool | None = None,
        custom_transport: bool = False,
    ) -> None:
        self._config = config = ClientConfig.resolve(
            base_url,
            admin_token=admin_token,
            timeout=timeout,
            cache_size=cache_size,
            cache_ttl=cache_ttl,
            negative_cache_ttl=negative_cache_ttl,
            max_retries=max_retries,
            retry_deadline=retry_deadline,
            stale_if_error=stale_if_error,
        )
        self._cache = ValidationCache(
            maxsize=config.cache_size,
            ttl=config.cache_ttl,
            negative_ttl=config.negative_cache_ttl,
            stale_if_error=config.stale_if_error,
        )
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
        self._subscription: Subscription | None = None
        #: Start the subscription with the next answer, even a cache hit: set in a
        #: forked child whose inherited entries the parent's stream vouched for.
        self._resubscribe = False
        if self._subscribes(subscribe_revocations, custom_transport):
            options = self._http_options()
            if self._basic_auth is not None:
                options["headers"]["Authorization"] = self._basic_auth
            self._subscription = Subscription(self._cache, http_options=options, where=self._where)
            # Collected without close(): the thread must not outlive the client.
            weakref.finalize(self, self._subscription.stop, 0)
        _CLIENTS.add(self)

    @staticmethod
    def _subscribes(requested: bool | None, custom_transport: bool) -> bool:
        """Whether to keep the revocation subscription: asked, or by default.

        By default yes, unless ``transport`` replaces the network (a test
        double offers no event stream) or :func:`set_testing` is on (tests
        want no background thread talking to the server).
        """
        if requested is not None and not isinstance(requested, bool):
            raise AuthConfigError(
                f"subscribe_revocations must be True, False or None, got {type(requested).__name__}"
            )
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
        if self._subscription is not None:
            # The parent's stream kept the inherited entries honest; the child
            # answers them without a miss, so its own stream must not wait for one.
            self._resubscribe = self._subscription.after_fork()
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

    @staticmethod
    def _validate_call(token: str) -> Call[Answer]:
        # Always without scopes: the scopes are checked locally, so one answer
        # serves every combination, and concurrent misses can share it.
        return Call(
            "validate",
            "POST",
            "/auth/validate",
            parse_answer,
            json={"token": token, "required_scopes": []},
            admin=False,
            secret=token,
            # A 4xx here is no answer about the token: most likely base_url
            # points elsewhere. Fail closed, with the status in the message.
            fail_closed=True,
        )

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
        self._resubscribe = False

    def clear_cache(self) -> None:
        """Forget every cached answer, e.g. after revoking tokens from this process."""
        self._cache.clear()

    # -- management ----------------------------------------------------------

    @staticmethod
    def _create_token_call(
        name: str,
        scopes: Collection[str],
        ttl_days: int | None,
        description: str | None,
        metadata: Mapping[str, str] | None,
    ) -> Call[CreatedToken]:
        if isinstance(scopes, str):
            raise TypeError(f"scopes must be a collection of scope names, not a str: [{scopes!r}]")
        body: dict[str, Any] = {"name": name, "scopes": list(scopes)}
        if ttl_days is not None:
            body["ttl_days"] = ttl_days
        if description is not None:
            body["description"] = description
        if metadata is not None:
            body["metadata"] = dict(metadata)
        # Not idempotent: a repeat after a read timeout could mint a second token.
        return Call(
            "create_token", "POST", "/auth/tokens", parse_created, json=body, idempotent=False
        )

    @staticmethod
    def _list_tokens_call(include_revoked: bool) -> Call[list[TokenInfo]]:
        params = {"all": "true"} if include_revoked else None
        return Call("list_tokens", "GET", "/auth/tokens", _list_of(parse_token_info), params=params)

    @staticmethod
    def _get_token_call(token_id: str) -> Call[TokenInfo]:
        path = f"/auth/tokens/{_checked_id(token_id)}"
        return Call("get_token", "GET", path, parse_token_info)

    @staticmethod
    def _revoke_token_call(token_id: str) -> Call[TokenInfo]:
        # Idempotent on the server: revoking twice changes nothing the second time.
        path = f"/auth/tokens/{_checked_id(token_id)}/revoke"
        return Call("revoke_token", "POST", path, parse_token_info, forget=token_id)

    @staticmethod
    def _extend_token_call(token_id: str, days: int) -> Call[TokenInfo]:
        path = f"/auth/tokens/{_checked_id(token_id)}/extend"
        # Not idempotent: each success adds ``days`` again.
        return Call(
            "extend_token",
            "POST",
            path,
            parse_token_info,
            json={"days": days},
            idempotent=False,
            forget=token_id,
        )

    @staticmethod
    def _token_audit_call(token_id: str, limit: int) -> Call[list[AuditEntry]]:
        path = f"/auth/tokens/{_checked_id(token_id)}/audit"
        return Call(
            "token_audit", "GET", path, _list_of(parse_audit_entry), params={"limit": str(limit)}
        )

    @staticmethod
    def _audit_call(limit: int) -> Call[list[AuditEntry]]:
        return Call(
            "audit", "GET", "/auth/audit", _list_of(parse_audit_entry), params={"limit": str(limit)}
        )

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
        if call.forget is not None:
            self._cache.forget(call.forget)
        try:
            yield request, self._retry.start(idempotent=call.idempotent)
        finally:
            if call.forget is not None:
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
        what = _scrub(f"{type(exc).__name__}: {exc}", self._secret(call))
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
        if 200 <= status < 300:
            try:
                return call.parse(response.json())
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                what = _scrub(f"{type(exc).__name__}: {exc}", self._secret(call))
                raise AuthServiceUnavailable(
                    f"the server at {self._where} answered {call.name} with HTTP {status} but "
                    f"not with the auth API's JSON ({what}); check that base_url points at the "
                    "auth service and that it runs a version this client speaks",
                    status_code=status,
                ) from exc
        code, detail, errors = _error_body(response, self._secret(call))
        if status >= 500 or call.fail_closed:
            raise self._refused(call, status, f"{code}: {detail}", attempts)
        if status not in _ERRORS:
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

    def _failed(
        self, key: str, required_scopes: Collection[str], error: BaseException
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
            stale = self._cache.stale(key, required_scopes)
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


def _error_body(
    response: httpx.Response, secret: str | None
) -> tuple[str, str, list[dict[str, Any]]]:
    """``(code, detail, errors)`` of an error answer, whatever shape it has."""
    fallback = f"http_{response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return fallback, f"unexpected answer (HTTP {response.status_code})", []
    if not isinstance(body, dict):
        return fallback, f"unexpected answer (HTTP {response.status_code})", []
    code = body.get("error")
    detail = body.get("detail")
    errors: list[dict[str, Any]] = []
    for item in body.get("errors") or ():
        if isinstance(item, dict):
            loc = item.get("loc")
            # Every part that is text is scrubbed: a server that echoes a
            # field's value could put it in any of them.
            errors.append(
                {
                    "loc": [p if isinstance(p, int) else _scrub(str(p), secret) for p in loc]
                    if isinstance(loc, list)
                    else [],
                    "msg": _scrub(str(item.get("msg", "")), secret),
                    "type": _scrub(str(item.get("type", "")), secret),
                }
            )
    return (
        _scrub(code, secret) if isinstance(code, str) else fallback,
        _scrub(detail if isinstance(detail, str) else "no detail given", secret),
        errors,
    )


def _checked_id(token_id: str) -> str:
    """``token_id`` if it has the ``tok_…`` shape; refused locally otherwise.

    The id becomes part of a URL, and URLs end up in logs: a raw token passed
    here by mistake must never be sent, nor echoed in the message.
    """
    if isinstance(token_id, str) and _TOKEN_ID.fullmatch(token_id):
        return token_id
    if isinstance(token_id, str) and token_id.startswith("amp_live_"):
        detail = "this is a raw token, not a token id: never pass a token where an id belongs"
    else:
        detail = "token ids look like 'tok_' followed by 16 lowercase letters or digits"
    raise InvalidRequest(detail, status_code=None, code="invalid_request")
