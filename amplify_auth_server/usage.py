"""Usage: how often each token is answered valid, and when it last was.

A use is a validation answered valid for the token, or refused only for its
scopes (the token itself was used): by this server (any cache tier or the
database, counted in :meth:`Validator.validate
<amplify_auth_server.validation.Validator.validate>`, the one place the
fast path and the FastAPI route share) or by an SDK's cache hit (reported
later, in bulk: :meth:`UsageReports.accept`). An SDK's miss reaches the
server, which counts it; its hit is counted by the SDK only. So every
validation is counted once.

On the hot path a use costs one dict increment, in this process's memory
(:attr:`UsageCounter.uses`). Every ``USAGE_FLUSH_SECONDS``,
:class:`UsageFlush` hands everything counted since the last flush to the
single writer as one :class:`~amplify_auth_server.commands.RecordUsage`:
one transaction for every token, adding to each token's count of the day
and moving its ``last_used_at`` up to the flush's time (never back). Each
replica flushes its own counts into the shared database, so they add up.

``last_used_at`` is the replica's clock at the flush (at a report, for an
SDK's hits): a use shows there within ``USAGE_FLUSH_SECONDS`` and one
writer round, at most that much later than it happened, never earlier, and
never in the future.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence

from amplify_auth_server import models
from amplify_auth_server.background import Background
from amplify_auth_server.commands import CommandQueue, RecordUsage
from amplify_auth_server.errors import AuthServerError
from amplify_auth_server.models import utcnow
from amplify_auth_server.throttle import FailureThrottle
from amplify_auth_server.validation import Validator

logger = logging.getLogger("amplify_auth_server.usage")


class UsageCounter:
    """This process's uses since the last flush: token id to count.

    A plain dict, incremented by the validation path and emptied by the
    flush; both run on the event loop, so neither needs a lock.
    """

    def __init__(self) -> None:
        self.uses: defaultdict[str, int] = defaultdict(int)

    def add(self, token_id: str, count: int) -> None:
        self.uses[token_id] += count

    def harvest(self) -> tuple[tuple[str, int], ...]:
        """Everything counted since the last harvest, sorted by id; the counter starts over."""
        harvested = tuple(sorted(self.uses.items()))
        self.uses.clear()
        return harvested

    def give_back(self, uses: Sequence[tuple[str, int]]) -> None:
        """Counts a flush could not write: the next flush tries them again."""
        for token_id, count in uses:
            self.uses[token_id] += count


class UsageFlush(Background):
    """Every ``interval`` seconds, and once more at shut-down, write the counts down."""

    task_name = "amplify-auth-usage-flush"

    def __init__(self, counter: UsageCounter, queue: CommandQueue, *, interval: float) -> None:
        self._counter = counter
        self._queue = queue
        self.interval = interval

    async def run(self) -> None:
        while True:
            # A timer, not a wait for an event: the interval is the bound we document.
            await asyncio.sleep(self.interval)
            await self.flush()

    async def stop(self) -> None:
        await super().stop()
        await self.flush()

    async def flush(self) -> None:
        """One :class:`RecordUsage` for everything counted since the last flush.

        If the writer cannot take it (the database is down), the counts go
        back into the counter: the next flush writes them with its own.
        They are bounded by the number of tokens, not of validations.
        """
        uses = self._counter.harvest()
        if not uses:
            return
        try:
            await self._queue.submit(RecordUsage(uses=uses, at=utcnow()))
        except AuthServerError as exc:
            self._counter.give_back(uses)
            logger.warning("usage of %d tokens not written yet (%s)", len(uses), exc.code)


class UsageReports:
    """SDKs' reports of their cache hits, by token hash.

    A hash is never shown by the API (only stored and cached), so naming
    one shows that the reporter has seen the token (or the database).
    Each hash is resolved through the validator's tiers, as a validation
    would be; only a token valid now is counted, with this server's clock
    as its last use. An unknown hash counts as a failed validation of the
    reporting client (:mod:`amplify_auth_server.throttle`): a flood of
    guessed hashes is a flood of lookups, and is refused as one.
    """

    def __init__(
        self, counter: UsageCounter, validator: Validator, throttle: FailureThrottle
    ) -> None:
        self._counter = counter
        self._validator = validator
        self._throttle = throttle

    async def accept(self, hits: Sequence[tuple[str, int]], client: str) -> int:
        """Count ``hits`` (hash, count) of tokens valid now; how many entries counted."""
        counted = 0
        for token_hash, count in hits:
            state = await self._validator.state_by_hash(token_hash)
            if not state.known:
                await self._throttle.failed("validation", client)
                continue
            if state.revoked or state.token_id is None:
                continue
            # The server's one clock, as validation judges expiry by it.
            if state.deadline is not None and state.deadline <= models.wall_time():
                continue
            self._counter.add(state.token_id, count)
            counted += 1
        return counted
