"""``Authenticator``: ``Authorization`` header values and a :class:`Policy` in; a
:class:`Caller` or a :class:`Refusal` out. The one authentication core.

``StatelessService`` and every integration (FastAPI, ASGI, Django, Flask,
gRPC) hand it the header values they received and send back what it
returns, so that they accept and refuse alike: the same statuses, challenges
and bodies, the same fail-closed 503 when the auth service cannot be asked.

The path of a request, cheapest first, allocating nothing on a cache hit but
the ``Caller``:

1. the header values: none (401, a bare challenge), two or more (400; also
   when a WSGI server folded two headers into one value, as RFC 9110 lets
   it), a scheme other than Bearer (401, bare), else the token;
2. the client's cache, without waiting (``_peek``; no lock on a hit), with
   the policy's ``max_staleness``;
3. only on a miss: the auth service, through the async client of the running
   loop (:meth:`authenticate_async`), the process's sync client
   (:meth:`authenticate`), or the sync client in a worker thread
   (:meth:`authenticate_in_thread`, for async code that does not own a
   lasting loop, such as Django's async views under WSGI);
4. the answer judged: 403 with the missing scopes, 401 with the token's state,
   503 (``Retry-After``) when the service is unreachable, unless the policy
   serves a recently valid answer, flagged ``Caller.stale``.

No refusal, log line or exception here is ever built from the raw token.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Sequence
from typing import Final, get_args

from amplify_auth_client._async_client import AsyncAuthClient
from amplify_auth_client._caller import Caller
from amplify_auth_client._client import AuthClient
from amplify_auth_client._exceptions import AuthServiceUnavailable
from amplify_auth_client._models import ValidationResult
from amplify_auth_client._policy import Policy
from amplify_auth_client._refusal import (
    Refusal,
    ambiguous_credentials,
    auth_unavailable,
    check_realm,
    insufficient_scope,
    invalid_token,
    missing_token,
)
from amplify_auth_client._shared import AsyncClientFactory, SharedClients
from amplify_auth_client.contract import Reason, bearer_token

logger = logging.getLogger("amplify_auth_client")

# One "scheme credentials" pair of a header value: two of them in one value
# are two Authorization headers that a WSGI server joined with a comma. A
# Bearer token holds no comma; a Digest header's parameters (realm="x") hold
# no space before their "=", so they are not taken for a second scheme.
_SCHEME_PAIR: Final = re.compile(r"(?:^|,)\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+[ \t]+[^\s,=]")

_default: Authenticator | None = None
_default_lock = threading.Lock()


class Authenticator:
    """Turns what a request carries into a :class:`Caller`, or a :class:`Refusal` to send.

    >>> from amplify_auth_client import Authenticator, Policy
    >>> auth = Authenticator(realm="orders")   # clients from AUTH_SERVICE_URL, on first use
    >>> auth.authenticate([], Policy(scopes=["orders:read"])).status
    401

    ``realm`` names the service in ``WWW-Authenticate`` (none by default).
    ``client``: the sync :class:`~amplify_auth_client.AuthClient` to use;
    ``async_client``: an :class:`~amplify_auth_client.AsyncAuthClient`, or a
    factory called once per event loop. Left out, each is built from the
    environment on first use and shared (see ``_shared``); the ones built
    here are closed by :meth:`close` and :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        realm: str | None = None,
        client: AuthClient | None = None,
        async_client: AsyncAuthClient | AsyncClientFactory | None = None,
    ) -> None:
        self.realm = check_realm(realm)
        self.clients = SharedClients(client, async_client)
        self._missing = missing_token(realm)
        self._ambiguous = ambiguous_credentials(realm)
        self._unavailable = auth_unavailable()
        self._invalid: dict[Reason | None, Refusal] = {
            reason: invalid_token(realm, reason) for reason in (None, *get_args(Reason))
        }

    def __repr__(self) -> str:
        return f"Authenticator(realm={self.realm!r})"

    @classmethod
    def default(cls) -> Authenticator:
        """The process's shared authenticator, which integrations use unless given one."""
        global _default
        if _default is None:
            with _default_lock:
                if _default is None:
                    _default = cls()
        return _default

    # -- the steps -------------------------------------------------------------

    def credentials(self, authorization: Sequence[str]) -> str | Refusal:
        """The bearer token of the request's ``Authorization`` values, or why there is none."""
        if len(authorization) != 1:
            return self._ambiguous if authorization else self._missing
        value = authorization[0]
        if "," in value and len(_SCHEME_PAIR.findall(value)) > 1:
            return self._ambiguous
        token = bearer_token(value)
        if token is None:
            # Another scheme (Basic...) or nothing usable: RFC 6750 asks for a
            # bare challenge here, without an error code.
            return self._missing
        return token

    def peek(self, authorization: Sequence[str], policy: Policy) -> Caller | Refusal | None:
        """What can be answered without waiting: a refusal of the headers, a cached
        answer, or None when only the auth service can say."""
        token = self.credentials(authorization)
        if isinstance(token, Refusal):
            return token
        result = self.clients.sync()._peek(token, policy.scopes, policy.max_staleness)
        return None if result is None else self.judge(result, policy)

    def judge(self, result: ValidationResult, policy: Policy) -> Caller | Refusal:
        """The caller a validation names, or the refusal it amounts to."""
        if result.reason == "insufficient_scope":
            return insufficient_scope(self.realm, policy.scopes, result.missing_scopes)
        if not result.valid:
            return self._invalid.get(result.reason, self._invalid[None])
        caller = result.caller or Caller.from_result(result)
        if caller is None:
            logger.warning("the auth service called a token valid without naming it")
            return self._unavailable
        return caller

    def unavailable(self, exc: AuthServiceUnavailable) -> Refusal:
        """The 503 for a validation the auth service could not answer; logged, never a pass."""
        logger.warning("request refused with 503: %s", exc)
        return self._unavailable

    # -- the three ways to wait --------------------------------------------------

    def authenticate(self, authorization: Sequence[str], policy: Policy) -> Caller | Refusal:
        """Authenticate with the process's sync client (blocks on a cache miss)."""
        token = self.credentials(authorization)
        if isinstance(token, Refusal):
            return token
        client = self.clients.sync()
        result = client._peek(token, policy.scopes, policy.max_staleness)
        if result is None:
            try:
                result = client.validate(
                    token,
                    policy.scopes,
                    max_staleness=policy.max_staleness,
                    stale_if_error=policy.stale_if_error,
                )
            except AuthServiceUnavailable as exc:
                return self.unavailable(exc)
        return self.judge(result, policy)

    async def authenticate_async(
        self, authorization: Sequence[str], policy: Policy
    ) -> Caller | Refusal:
        """Authenticate with the running loop's async client (suspends only on a miss)."""
        token = self.credentials(authorization)
        if isinstance(token, Refusal):
            return token
        client = self.clients.current()
        result = client._peek(token, policy.scopes, policy.max_staleness)
        if result is None:
            try:
                result = await client.validate(
                    token,
                    policy.scopes,
                    max_staleness=policy.max_staleness,
                    stale_if_error=policy.stale_if_error,
                )
            except AuthServiceUnavailable as exc:
                return self.unavailable(exc)
        return self.judge(result, policy)

    async def authenticate_in_thread(
        self, authorization: Sequence[str], policy: Policy
    ) -> Caller | Refusal:
        """Authenticate from async code with the sync client: a hit in the loop, a miss in
        a worker thread. For loops that come and go (Django's async views under WSGI
        run each in a loop of its own), so that they all share one cache."""
        found = self.peek(authorization, policy)
        if found is not None:
            return found
        return await asyncio.to_thread(self.authenticate, authorization, policy)

    # -- closing -------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync client built here (a later request builds a new one)."""
        self.clients.close()

    async def aclose(self) -> None:
        """Close the running loop's async client built here."""
        await self.clients.aclose()

    def reset(self) -> None:
        """Forget every client built here, so that the next request reads the environment
        anew: for tests that point ``AUTH_SERVICE_URL`` at another server."""
        self.clients.reset()
