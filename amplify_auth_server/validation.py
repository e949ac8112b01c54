"""The read path: from a raw token to an answer, touching as little as possible.

1. Shape and checksum, locally: a malformed token costs no lookup at all.
2. SHA-256, then the local cache, then Redis, then the database. Concurrent
   misses for the same hash share one lookup, so a burst of requests with a
   new token (or a flood of one garbage token) reaches the database once.
3. The answer is computed from the cached state at the time of the request
   (expiry included), so no cache tier can serve an expired token as valid.

Nothing here writes to the database, and nothing here keeps the raw token:
it is hashed and dropped in step 2.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import orjson

from amplify_auth_client.contract import Reason, hash_token, missing_scopes, token_is_well_formed
from amplify_auth_server import models
from amplify_auth_server.cache import UNKNOWN, TokenCache, TokenState
from amplify_auth_server.metrics import Metrics
from amplify_auth_server.store import TokenStore


def _body(
    *,
    valid: bool,
    reason: Reason | None,
    state: TokenState | None = None,
    scopes: Sequence[str] = (),
    missing: Sequence[str] = (),
) -> bytes:
    return orjson.dumps(
        {
            "valid": valid,
            "scopes": scopes,
            "token_id": None if state is None else state.token_id,
            "name": None if state is None else state.name,
            "owner": None if state is None else state.owner,
            "reason": reason,
            "missing_scopes": missing,
            "expires_at": None if state is None else state.expires_at,
            # Part of the state, so memoised with it: no work per request.
            "replaced_by": None if state is None else state.replaced_by,
        },
        option=orjson.OPT_UTC_Z,
    )


MALFORMED_BODY: Final = _body(valid=False, reason="malformed")
UNKNOWN_BODY: Final = _body(valid=False, reason="unknown")


#: The results that are a use of the token (see amplify_auth_server.usage):
#: a scope refusal too, as the token itself was presented and known good.
USED_RESULTS: Final = frozenset({"valid", "insufficient_scope"})


@dataclass(frozen=True, slots=True)
class Verdict:
    """A validation's answer: the response body and the result for metrics."""

    body: bytes
    result: str
    state: TokenState | None


class Validator:
    """``uses``: where each use is counted, token id to count (``USAGE_COUNTING``
    off: None, and nothing is counted)."""

    def __init__(
        self,
        store: TokenStore,
        cache: TokenCache,
        metrics: Metrics,
        *,
        uses: defaultdict[str, int] | None = None,
    ) -> None:
        self._store = store
        self._cache = cache
        self._metrics = metrics
        self._uses = uses
        # The cache's own table, so that every change to a token detaches its
        # lookup (see LocalCache).
        self._inflight = cache.inflight

    async def validate(self, token: str, required_scopes: Sequence[str] = ()) -> Verdict:
        state = await self.state_of(token)
        verdict = self.judge(state, required_scopes)
        self._metrics.validation_by_result[verdict.result].inc()
        # The whole cost of usage on the hot path: one set lookup, one increment.
        uses = self._uses
        if uses is not None and verdict.result in USED_RESULTS:
            uses[verdict.state.token_id] += 1  # type: ignore[union-attr,index]
        return verdict

    def used(self, verdict: Verdict) -> None:
        """Count ``verdict`` as a use if it is one: for callers that :meth:`judge`
        a state themselves (an admin token's check)."""
        uses, state = self._uses, verdict.state
        if uses is None or verdict.result not in USED_RESULTS or state is None:
            return
        if state.token_id is not None:
            uses[state.token_id] += 1

    async def state_of(self, token: str) -> TokenState | None:
        """What the caches or the database know of ``token``; None if malformed."""
        key = hash_token(token)
        state = self._cache.get_local(key)
        if state is not None:
            # Only well-formed tokens are ever cached, so a hit needs no
            # shape check: the checksum costs more than the lookup.
            self._metrics.local_hit.inc()
            return state
        if not token_is_well_formed(token):
            return None
        return await self._miss(key)

    async def state_by_hash(self, key: str) -> TokenState:
        """What the caches or the database know of the token hashed to ``key``.

        For a holder of a hash rather than a token (a console session): the
        same tiers, and so the same invalidation on revoke, as :meth:`state_of`.
        """
        state = self._cache.get_local(key)
        if state is not None:
            self._metrics.local_hit.inc()
            return state
        return await self._miss(key)

    def _miss(self, key: str) -> asyncio.Future[TokenState]:
        # A plain function handing back the shielded lookup: no coroutine of
        # its own on the miss path.
        self._metrics.local_miss.inc()
        lookup = self._inflight.get(key)
        if lookup is None:
            # A task of its own, so that a caller who hangs up cannot cancel
            # the lookup that other callers are waiting for.
            lookup = asyncio.create_task(self._load(key, self._cache.generation))
            self._inflight[key] = lookup
            lookup.add_done_callback(lambda done: self._landed(key, done))
        else:
            self._metrics.coalesced.inc()
        return asyncio.shield(lookup)

    def _landed(self, key: str, lookup: asyncio.Task[TokenState]) -> None:
        # Only if it is still ours: a change may have replaced it meanwhile.
        if self._inflight.get(key) is lookup:
            del self._inflight[key]

    async def _load(self, key: str, generation: int) -> TokenState:
        state = await self._cache.get_shared(key, generation)
        if state is not None:
            return state
        self._metrics.database_lookups.inc()
        record = await self._store.get_by_hash(key)
        state = UNKNOWN if record is None else TokenState.from_record(record)
        return await self._cache.fill(key, state, generation)

    @staticmethod
    def judge(state: TokenState | None, required_scopes: Sequence[str]) -> Verdict:
        if state is None:
            return Verdict(MALFORMED_BODY, "malformed", None)
        if not state.known:
            return Verdict(UNKNOWN_BODY, "unknown", state)
        if state.revoked:
            return Verdict(_body(valid=False, reason="revoked", state=state), "revoked", state)
        if state.deadline is not None and state.deadline <= models.wall_time():
            return Verdict(_body(valid=False, reason="expired", state=state), "expired", state)
        if required_scopes:
            missing = missing_scopes(state.scopes, required_scopes)
            if missing:
                body = _body(
                    valid=False,
                    reason="insufficient_scope",
                    state=state,
                    scopes=state.scopes,
                    missing=missing,
                )
                return Verdict(body, "insufficient_scope", state)
        if state.rendered is None:
            state.rendered = _body(valid=True, reason=None, state=state, scopes=state.scopes)
        return Verdict(state.rendered, "valid", state)
