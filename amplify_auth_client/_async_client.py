"""``AsyncAuthClient``: the asyncio shell. It sends, sleeps between retries, and
coalesces concurrent misses across tasks; everything else is in ``_base``."""

from __future__ import annotations

import asyncio
import threading
from asyncio import sleep
from collections.abc import AsyncIterator, Collection, Mapping
from datetime import datetime
from types import TracebackType
from typing import TypeVar, Unpack

import httpx

from amplify_auth_client import _api
from amplify_auth_client._api import Call
from amplify_auth_client._base import BaseAuthClient, Wait
from amplify_auth_client._cache import SCOPE_TYPES, Answer, ValidationCache, scopes_of
from amplify_auth_client._exceptions import AuthConfigError, AuthServiceUnavailable
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


class AsyncAuthClient(BaseAuthClient):
    """The asyncio twin of :class:`~amplify_auth_client.AuthClient`: same arguments,
    same methods, as coroutines (``cache_stats`` and ``clear_cache`` stay plain).

    Use one client per event loop (a second loop gets :class:`AuthConfigError`),
    created inside the loop that uses it, and close it when done::

        async with AsyncAuthClient("http://auth:8000") as auth:
            result = await auth.validate(token, required_scopes=["orders:read"])

    A cache hit completes without suspending, so it costs what the sync hit costs.
    """

    _http: httpx.AsyncClient
    _cache: ValidationCache[asyncio.Future[Answer]]

    def __init__(
        self,
        base_url: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self._transport = transport
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        # Strong references: the loop keeps only weak ones to its tasks.
        self._fetches: set[asyncio.Task[None]] = set()
        super().__init__(base_url, options, custom_transport=transport is not None)

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self._transport, **self._http_options())

    async def __aenter__(self) -> AsyncAuthClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool, end the revocation subscription and send a last
        usage report. Cached answers stay usable (for their TTLs); requests do not."""
        await self._http.aclose()
        if self._subscription is not None:
            # In a thread: the subscription's own thread is joined, briefly.
            await asyncio.to_thread(self._subscription.stop)
        if self._reporter is not None:
            # A last report, over the reporter's own (sync) pool: off the loop.
            await asyncio.to_thread(self._reporter.stop)

    # -- validation ----------------------------------------------------------

    async def validate(
        self,
        token: str,
        required_scopes: Collection[str] = (),
        *,
        max_staleness: float | None = None,
        stale_if_error: float | None = None,
    ) -> ValidationResult:
        """Whether ``token`` is valid and holds every one of ``required_scopes``.

        Answers from the cache when it can, otherwise asks the server once for
        all the tasks that want the same token now. Raises
        :class:`AuthServiceUnavailable` when the server cannot answer (unless
        ``stale_if_error`` allows a flagged stale answer): it never guesses
        "valid"; :class:`AuthConfigError` when used from a second event loop.
        ``max_staleness`` and ``stale_if_error``: as for
        :meth:`AuthClient.validate`.
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
        loop = self._running_loop()
        self._subscribe()
        self._per_call(max_staleness, stale_if_error)
        joined = self._cache.join(found, required_scopes, loop.create_future, max_staleness)
        if isinstance(joined, ValidationResult):
            return joined
        future, generation, fetch = joined
        if fetch:
            # A task of its own, so that a caller who is cancelled cannot
            # cancel the request the other callers wait for.
            task = loop.create_task(self._fetch(token, found, future, generation))
            self._fetches.add(task)
            task.add_done_callback(self._fetches.discard)
        # asyncio.wait, not `await future`: it never cancels the future when
        # this caller is cancelled, and never raises the one shared error,
        # whose traceback would grow by each waiter's frames.
        done, _ = await asyncio.wait((future,), timeout=self._wait_limit)
        error = future.exception() if done else self._overdue()
        if error is not None:
            return self._failed(found, required_scopes, error, max_staleness, stale_if_error)
        answer = future.result()
        return answer.judge(required_scopes, answer.fresh)

    async def _fetch(
        self, token: str, key: str, future: asyncio.Future[Answer], generation: int
    ) -> None:
        """Ask the server for every task waiting on ``future``; complete it whatever happens."""
        answer: Answer | None = None
        error: AuthServiceUnavailable | None = None
        try:
            answer = await self._send(_api.validate(token))
        except Exception as exc:
            error = self._flight_error(exc)
        finally:
            # Also when cancelled (the loop shutting down): waiters must not hang.
            try:
                self._cache.settle(key, future, generation, answer)
            finally:
                if answer is not None:
                    future.set_result(answer)
                else:
                    future.set_exception(error or self._interrupted())
                    # Retrieved: if every waiter was cancelled, asyncio would
                    # otherwise log "exception was never retrieved".
                    future.exception()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, if it is the one this client belongs to (the first it was used in).

        Its connections and its requests in flight live in that loop; from
        another they fail with raw RuntimeErrors and leave the client broken.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            with self._loop_lock:  # two threads starting two loops at once: one wins
                if self._loop is None:
                    self._loop = loop
            if self._loop is not loop:
                raise AuthConfigError(
                    "this AsyncAuthClient was first used in another event loop: use one "
                    "AsyncAuthClient per event loop, and create it inside the loop that uses it "
                    "(e.g. in your app's startup, not at import)"
                )
        return loop

    def _after_fork(self) -> None:
        super()._after_fork()
        # The child starts its own loop, if any: the client is new to it.
        self._loop = None
        self._loop_lock = threading.Lock()
        self._fetches = set()

    # -- management ----------------------------------------------------------

    async def create_token(
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
        return await self._send(
            _api.create_token(name, scopes, ttl_days, description, metadata, owner, idempotency_key)
        )

    async def list_tokens(
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
        return await self._send(
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

    async def iter_tokens(
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
    ) -> AsyncIterator[TokenInfo]:
        """Every token matching the filters (see :meth:`list_tokens`), fetching pages as
        the loop needs them."""
        cursor: str | None = None
        while True:
            page = await self.list_tokens(
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
            for item in page:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get_token(self, token_id: str) -> TokenInfo:
        """One token's details, by id (``tok_…``)."""
        return await self._send(_api.get_token(token_id))

    async def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token now; revoking it again is harmless.

        This client forgets its cached answer at once, and no validation it
        started before the revoke returned is cached or joined afterwards;
        every other client may accept it for up to its ``cache_ttl``. See
        :meth:`AuthClient.revoke_token`.
        """
        return await self._send(_api.revoke_token(token_id))

    async def revoke_tokens(self, token_ids: Collection[str]) -> BulkRevocation:
        """Revoke up to 1000 tokens by id, in one call: every one is revoked when it returns.

        The answer says which were revoked now, which were already, and which
        ids are of no token. Like :meth:`revoke_token`, safe to repeat.
        """
        return await self._send(_api.revoke_tokens(token_ids))

    async def revoke_where(
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
        return await self._send(
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

    async def rotate_token(
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
        return await self._send(
            _api.rotate_token(token_id, grace_seconds, finish_when_idle_seconds, idempotency_key)
        )

    async def extend_token(self, token_id: str, days: int) -> TokenInfo:
        """Push a token's expiry ``days`` further. :class:`TokenConflict` if revoked or endless."""
        return await self._send(_api.extend_token(token_id, days))

    async def token_audit(
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
        return await self._send(
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

    async def audit(
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
        return await self._send(
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

    async def iter_audit(
        self,
        *,
        token_id: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[AuditEntry]:
        """Every audit entry matching the filters (one token's, with ``token_id``),
        newest first, fetching pages as the loop needs them."""
        cursor: str | None = None
        while True:
            page = await self._send(
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
            for item in page:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # -- sending -------------------------------------------------------------

    async def _send(self, call: Call[T]) -> T:
        """Send ``call`` with bounded retries; return its parsed answer or raise ours."""
        self._running_loop()
        with self._calling(call) as (request, attempts):
            while True:
                self._before_attempt(call, request, attempts)
                outcome: httpx.Response | Exception
                try:
                    outcome = await self._http.send(request)
                except (httpx.HTTPError, RuntimeError) as exc:
                    outcome = exc
                step = self._step(call, attempts, outcome)
                if not isinstance(step, Wait):
                    return step
                if step.seconds > 0:
                    await sleep(step.seconds)


# help() and inspect.signature() show every option with its default.
AsyncAuthClient.__init__.__signature__ = signature("httpx.AsyncBaseTransport")  # type: ignore[attr-defined]
