"""``AuthClient``: the synchronous shell. It sends, sleeps between retries, and
coalesces concurrent misses across threads; everything else is in ``_base``."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from concurrent.futures import Future
from datetime import datetime
from time import sleep
from types import TracebackType
from typing import TypeVar, Unpack

import httpx

from amplify_auth_client import _api
from amplify_auth_client._api import Call
from amplify_auth_client._base import BaseAuthClient, Wait
from amplify_auth_client._cache import SCOPE_TYPES, Answer, ValidationCache, scopes_of
from amplify_auth_client._exceptions import AuthServiceUnavailable
from amplify_auth_client._models import (
    AuditEntry,
    BulkRevocation,
    CreatedToken,
    Page,
    RotatedToken,
    TokenInfo,
    ValidationResult,
)
from amplify_auth_client._options import ClientOptions, signature
from amplify_auth_client.contract import DEFAULT_GRACE_SECONDS, DEFAULT_PAGE_SIZE, ListStatus

T = TypeVar("T")


class AuthClient(BaseAuthClient):
    """Validate tokens against AMPLIfy Auth, with a local cache; manage tokens.

    Thread-safe: share one client across a process's threads, so that they
    share its cache and connection pool. Close it when done (or use it as a
    context manager)::

        with AuthClient("http://auth:8000") as auth:
            result = auth.validate(token, required_scopes=["orders:write"])
            if not result:
                raise PermissionError(result.reason)

    Every option is documented in :mod:`amplify_auth_client._options`;
    ``base_url`` defaults to env ``AUTH_SERVICE_URL`` and ``admin_token`` to
    env ``AUTH_ADMIN_TOKEN``. ``transport`` replaces the network, e.g. with
    :class:`amplify_auth_client.testing.FakeAuthServer`'s.
    """

    _http: httpx.Client
    _cache: ValidationCache[Future[Answer]]

    def __init__(
        self,
        base_url: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self._transport = transport
        super().__init__(base_url, options, custom_transport=transport is not None)

    def _sync_transport(self) -> httpx.BaseTransport | None:
        return self._transport

    def _new_http(self) -> httpx.Client:
        return httpx.Client(transport=self._transport, **self._http_options())

    def __enter__(self) -> AuthClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool, end the revocation subscription and send a last
        usage report. Cached answers stay usable (for their TTLs); requests do not."""
        self._http.close()
        if self._subscription is not None:
            self._subscription.stop()
        if self._reporter is not None:
            self._reporter.stop()  # with a last report

    # -- validation ----------------------------------------------------------

    def validate(
        self,
        token: str,
        required_scopes: Collection[str] = (),
        *,
        max_staleness: float | None = None,
        stale_if_error: float | None = None,
    ) -> ValidationResult:
        """Whether ``token`` is valid and holds every one of ``required_scopes``.

        Answers from the cache when it can (a few microseconds), otherwise asks
        the server once for all the threads that want the same token now.
        Raises :class:`AuthServiceUnavailable` when the server cannot answer
        (unless ``stale_if_error`` allows a flagged stale answer): it never
        guesses "valid". ``required_scopes``: a single str is refused, and
        so is None (``()`` asks for none); an iterator is read once.

        Two options tune one call to how dangerous its action is:
        ``max_staleness`` is the oldest cached answer it accepts, in seconds
        (None: the client's ``cache_ttl``; 0: ask the server, sharing a
        request already in flight for the same token); ``stale_if_error``
        overrides the client's for this call (how long past its freshness a
        positive answer may serve while the server cannot be reached).
        """
        if type(required_scopes) not in SCOPE_TYPES:
            required_scopes = scopes_of(required_scopes)
        found = self._lookup(token, required_scopes, max_staleness)
        # type() rather than isinstance(): a tenth of a hit's cost. A lookup
        # returns a ValidationResult itself, never a subclass, or a str key.
        if type(found) is ValidationResult:
            if self._resubscribe:  # a forked child's first answer (see _after_fork)
                self._subscribe()
            return found
        assert isinstance(found, str)
        self._subscribe()
        self._per_call(max_staleness, stale_if_error)
        joined = self._cache.join(found, required_scopes, Future, max_staleness)
        if isinstance(joined, ValidationResult):
            return joined
        future, generation, fetch = joined
        if fetch:
            self._fetch(token, found, future, generation)
        try:
            # exception() rather than result(): raising the one shared error in
            # every waiter would grow its traceback by each waiter's frames.
            error = future.exception(timeout=self._wait_limit)
        except TimeoutError:
            error = self._overdue()
        if error is not None:
            return self._failed(found, required_scopes, error, max_staleness, stale_if_error)
        answer = future.result()
        return answer.judge(required_scopes, answer.fresh)

    def _fetch(self, token: str, key: str, future: Future[Answer], generation: int) -> None:
        """Ask the server for every caller waiting on ``future``; complete it whatever happens."""
        answer: Answer | None = None
        error: AuthServiceUnavailable | None = None
        try:
            answer = self._send(_api.validate(token))
        except Exception as exc:
            error = self._flight_error(exc)
        finally:
            # Also on KeyboardInterrupt, here or in settle(), which stops this
            # thread but must not leave the others waiting.
            try:
                self._cache.settle(key, future, generation, answer)
            finally:
                if answer is not None:
                    future.set_result(answer)
                else:
                    future.set_exception(error or self._interrupted())

    # -- management ----------------------------------------------------------

    def create_token(
        self,
        name: str,
        scopes: Collection[str],
        ttl_days: int | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        *,
        owner: str | None = None,
        idempotency_key: str | None = None,
    ) -> CreatedToken:
        """Mint a token; ``.token`` on the result is the raw secret, shown only this once.

        ``ttl_days=None`` makes a token that never expires. ``owner`` names the
        team or service it belongs to (never changed after); a delegated admin's
        tokens get its own owner, whether or not it is given. Every call sends an
        ``Idempotency-Key`` (a fresh one unless ``idempotency_key`` is given), so
        the call is retried after a timeout without risk of a second token; a
        repeat whose first answer was lost raises :class:`TokenAlreadyCreated`.
        """
        return self._send(
            _api.create_token(name, scopes, ttl_days, description, metadata, owner, idempotency_key)
        )

    def list_tokens(
        self,
        include_revoked: bool = False,
        *,
        status: ListStatus | None = None,
        name: str | None = None,
        scope: str | None = None,
        expires_within_days: int | None = None,
        owner: str | None = None,
        unused_for_days: int | None = None,
        used_within_days: int | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[TokenInfo]:
        """One page of tokens, newest first: active ones, unless ``status`` (or
        ``include_revoked=True``, the same as ``status="all"``) says otherwise.

        ``name`` is a prefix, whatever its case; ``scope`` one the tokens hold;
        ``expires_within_days`` keeps those expiring that soon; ``owner`` those of
        one owner (a delegated admin sees only its own owner's); ``unused_for_days``
        those not used for that many days (never used included), ``used_within_days``
        those used since. Pass the page's
        ``next_cursor`` back as ``cursor``, with the same filters, for the next
        one, or use :meth:`iter_tokens`.
        """
        return self._send(
            _api.list_tokens(
                status="all" if include_revoked and status is None else status,
                name=name,
                scope=scope,
                expires_within_days=expires_within_days,
                owner=owner,
                unused_for_days=unused_for_days,
                used_within_days=used_within_days,
                limit=limit,
                cursor=cursor,
            )
        )

    def iter_tokens(
        self,
        *,
        status: ListStatus | None = None,
        name: str | None = None,
        scope: str | None = None,
        expires_within_days: int | None = None,
        owner: str | None = None,
        unused_for_days: int | None = None,
        used_within_days: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[TokenInfo]:
        """Every token matching the filters (see :meth:`list_tokens`), fetching pages as
        the loop needs them."""
        cursor: str | None = None
        while True:
            page = self.list_tokens(
                status=status,
                name=name,
                scope=scope,
                expires_within_days=expires_within_days,
                owner=owner,
                unused_for_days=unused_for_days,
                used_within_days=used_within_days,
                limit=page_size,
                cursor=cursor,
            )
            yield from page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_token(self, token_id: str) -> TokenInfo:
        """One token's details, by id (``tok_…``)."""
        return self._send(_api.get_token(token_id))

    def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token now; revoking it again is harmless.

        This client forgets its cached answer for the token at once, and no
        validation it started before the revoke returned is cached or joined
        afterwards; every other client (in other processes, or other client
        objects in this one) may keep accepting it from its cache for up to
        its ``cache_ttl``.
        """
        return self._send(_api.revoke_token(token_id))

    def revoke_tokens(self, token_ids: Collection[str]) -> BulkRevocation:
        """Revoke up to 1000 tokens by id, in one call: every one is revoked when it returns.

        The answer says which were revoked now, which were already, and which
        ids are of no token. Like :meth:`revoke_token`, safe to repeat.
        """
        return self._send(_api.revoke_tokens(token_ids))

    def revoke_where(
        self,
        *,
        name: str | None = None,
        scope: str | None = None,
        expires_within_days: int | None = None,
        owner: str | None = None,
        unused_for_days: int | None = None,
        used_within_days: int | None = None,
        dry_run: bool = False,
    ) -> int:
        """Revoke every active token matching the filters (at least one); how many.

        ``dry_run=True`` only counts them. A compromised service's tokens, by
        name prefix or scope: every one is refused everywhere once this returns.
        """
        return self._send(
            _api.revoke_where(
                name=name,
                scope=scope,
                expires_within_days=expires_within_days,
                owner=owner,
                unused_for_days=unused_for_days,
                used_within_days=used_within_days,
                dry_run=dry_run,
            )
        )

    def rotate_token(
        self,
        token_id: str,
        *,
        grace_seconds: int = DEFAULT_GRACE_SECONDS,
        finish_when_idle_seconds: int | None = None,
        idempotency_key: str | None = None,
    ) -> RotatedToken:
        """Replace a token by a new one, shown once as a create's; the old one keeps
        working ``grace_seconds`` more (30 days at most; a day by default), or until
        its own expiry if sooner, and is then refused as expired. ``0`` revokes it
        at once. ``finish_when_idle_seconds`` ends the grace early: the server
        revokes the old token once it has gone unused that long, SDKs' cache hits
        counted (120 s at least, at most ``grace_seconds``).

        The successor has the old token's name, scopes, owner, description,
        metadata and lifetime (counted from now); ``.previous`` is the old token
        as the rotation left it. :class:`TokenConflict` if the token is revoked,
        expired or already rotated. Sent with an ``Idempotency-Key`` and retried
        as :meth:`create_token` is; a repeat whose first answer was lost raises
        :class:`TokenAlreadyCreated`.
        """
        return self._send(
            _api.rotate_token(token_id, grace_seconds, finish_when_idle_seconds, idempotency_key)
        )

    def extend_token(self, token_id: str, days: int) -> TokenInfo:
        """Push a token's expiry ``days`` further. :class:`TokenConflict` if revoked or endless."""
        return self._send(_api.extend_token(token_id, days))

    def token_audit(
        self,
        token_id: str,
        limit: int = DEFAULT_PAGE_SIZE,
        *,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
    ) -> Page[AuditEntry]:
        """One page of a token's audit trail, newest first (filters as :meth:`audit`)."""
        return self._send(
            _api.audit(
                token_id=token_id,
                action=action,
                actor=actor,
                since=since,
                until=until,
                limit=limit,
                cursor=cursor,
            )
        )

    def audit(
        self,
        limit: int = DEFAULT_PAGE_SIZE,
        *,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
    ) -> Page[AuditEntry]:
        """One page of the audit log, newest first: of one ``action``, one ``actor``
        (a token id, or ``"system"``), from ``since`` and before ``until``."""
        return self._send(
            _api.audit(
                token_id=None,
                action=action,
                actor=actor,
                since=since,
                until=until,
                limit=limit,
                cursor=cursor,
            )
        )

    def iter_audit(
        self,
        *,
        token_id: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[AuditEntry]:
        """Every audit entry matching the filters (one token's, with ``token_id``),
        newest first, fetching pages as the loop needs them."""
        cursor: str | None = None
        while True:
            page = self._send(
                _api.audit(
                    token_id=token_id,
                    action=action,
                    actor=actor,
                    since=since,
                    until=until,
                    limit=page_size,
                    cursor=cursor,
                )
            )
            yield from page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # -- sending -------------------------------------------------------------

    def _send(self, call: Call[T]) -> T:
        """Send ``call`` with bounded retries; return its parsed answer or raise ours."""
        with self._calling(call) as (request, attempts):
            while True:
                self._before_attempt(call, request, attempts)
                outcome: httpx.Response | Exception
                try:
                    outcome = self._http.send(request)
                except (httpx.HTTPError, RuntimeError) as exc:
                    outcome = exc
                step = self._step(call, attempts, outcome)
                if not isinstance(step, Wait):
                    return step
                if step.seconds > 0:
                    sleep(step.seconds)


# help() and inspect.signature() show every option with its default.
AuthClient.__init__.__signature__ = signature("httpx.BaseTransport")  # type: ignore[attr-defined]
