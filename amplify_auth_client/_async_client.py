"""``AsyncAuthClient``: the asyncio shell. It sends, sleeps between retries, and
coalesces concurrent misses across tasks; everything else is in ``_base``."""

from __future__ import annotations

import asyncio
from asyncio import sleep
from collections.abc import Collection, Mapping
from functools import partial
from types import TracebackType
from typing import TypeVar

import httpx

from amplify_auth_client._base import BaseAuthClient, Call, Wait
from amplify_auth_client._cache import Answer
from amplify_auth_client._config import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_CACHE_TTL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_NEGATIVE_CACHE_TTL,
    DEFAULT_RETRY_DEADLINE,
    DEFAULT_TIMEOUT,
)
from amplify_auth_client._exceptions import AuthServiceUnavailable
from amplify_auth_client._models import (
    AuditEntry,
    CreatedToken,
    TokenInfo,
    ValidationResult,
)

T = TypeVar("T")


class AsyncAuthClient(BaseAuthClient):
    """The asyncio twin of :class:`~amplify_auth_client.AuthClient`: same arguments,
    same methods, as coroutines (``cache_stats`` and ``clear_cache`` stay plain).

    Use one client per event loop, and close it when done::

        async with AsyncAuthClient("http://auth:8000") as auth:
            result = await auth.validate(token, required_scopes=["orders:read"])

    A cache hit completes without suspending, so it costs what the sync hit costs.
    """

    _http: httpx.AsyncClient

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
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
        self._http = httpx.AsyncClient(transport=transport, **self._http_options())
        # One fetch task per token hash being validated right now.
        self._inflight: dict[str, asyncio.Task[Answer]] = {}

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
        """Close the connection pool. Cached answers stay usable; requests do not."""
        await self._http.aclose()

    # -- validation ----------------------------------------------------------

    async def validate(self, token: str, required_scopes: Collection[str] = ()) -> ValidationResult:
        """Whether ``token`` is valid and holds every one of ``required_scopes``.

        Answers from the cache when it can, otherwise asks the server once for
        all the tasks that want the same token now. Raises
        :class:`AuthServiceUnavailable` when the server cannot answer (unless
        ``stale_if_error`` allows a flagged stale answer): it never guesses "valid".
        """
        found = self._cache.lookup(token, required_scopes)
        if not isinstance(found, str):
            return found
        # No await since the lookup: no other task can have landed an answer,
        # so the in-flight table alone says whether to fetch or to join.
        task = self._inflight.get(found)
        if task is None:
            # A task of its own, shielded below, so that a caller who is
            # cancelled cannot cancel the request the other callers await.
            task = asyncio.create_task(self._fetch(token, found))
            self._inflight[found] = task
            task.add_done_callback(partial(self._landed, found))
            self._cache.count_miss(coalesced=False)
        else:
            self._cache.count_miss(coalesced=True)
        try:
            answer = await asyncio.shield(task)
        except AuthServiceUnavailable as exc:
            stale = self._stale(found, required_scopes, exc)
            if stale is None:
                raise
            return stale
        return answer.judge(required_scopes, answer.fresh)

    async def _fetch(self, token: str, key: str) -> Answer:
        try:
            answer = await self._send(self._validate_call(token))
        except BaseException:
            self._cache.count_error()
            raise
        # Stored before the task completes, so a caller arriving between now
        # and _landed finds the entry rather than a finished flight.
        self._cache.put(key, answer)
        return answer

    def _landed(self, key: str, task: asyncio.Task[Answer]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            # Mark the exception as seen: if every waiter was cancelled,
            # asyncio would otherwise log "exception was never retrieved".
            task.exception()

    # -- management ----------------------------------------------------------

    async def create_token(
        self,
        name: str,
        scopes: Collection[str],
        ttl_days: int | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> CreatedToken:
        """Mint a token; ``.token`` on the result is the raw secret, shown only this once.

        ``ttl_days=None`` makes a token that never expires.
        """
        return await self._send(
            self._create_token_call(name, scopes, ttl_days, description, metadata)
        )

    async def list_tokens(self, include_revoked: bool = False) -> list[TokenInfo]:
        """Active tokens, oldest first; ``include_revoked=True`` adds revoked and expired ones."""
        return await self._send(self._list_tokens_call(include_revoked))

    async def get_token(self, token_id: str) -> TokenInfo:
        """One token's details, by id (``tok_…``)."""
        return await self._send(self._get_token_call(token_id))

    async def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token now; revoking it again is harmless.

        This client forgets its cached answer at once; every other client may
        accept it for up to its ``cache_ttl``. See :meth:`AuthClient.revoke_token`.
        """
        info = await self._send(self._revoke_token_call(token_id))
        self._cache.forget(info.token_id)
        return info

    async def extend_token(self, token_id: str, days: int) -> TokenInfo:
        """Push a token's expiry ``days`` further. :class:`TokenConflict` if revoked or endless."""
        info = await self._send(self._extend_token_call(token_id, days))
        self._cache.forget(info.token_id)
        return info

    async def token_audit(self, token_id: str, limit: int = 100) -> list[AuditEntry]:
        """A token's audit trail, newest first."""
        return await self._send(self._token_audit_call(token_id, limit))

    async def audit(self, limit: int = 100) -> list[AuditEntry]:
        """The whole audit log, newest first."""
        return await self._send(self._audit_call(limit))

    # -- sending -------------------------------------------------------------

    async def _send(self, call: Call[T]) -> T:
        """Send ``call`` with bounded retries; return its parsed answer or raise ours."""
        request, attempts = self._start(call)
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
