"""The validation cache: what the server said about each token, and for how long to believe it.

Logic only, no I/O: the clients ask it before sending, and tell it what came back.

- **Keyed by SHA-256**, never by the raw token, so a heap dump or a debugger
  shows no secrets (the same :func:`~amplify_auth_client.hash_token` the
  server uses).
- **One entry per token, not per question.** The clients always ask the
  server with no required scopes and keep the token's scopes, so one entry
  answers every ``required_scopes`` combination locally.
- **Deadlines live in the entry**: a fresh-until time on the monotonic clock
  (``cache_ttl`` for positive answers, the shorter ``negative_cache_ttl`` for
  unknown, revoked and expired tokens), the time it was fetched (for a
  caller's ``max_staleness``), and the token's own ``expires_at`` on the wall
  clock, past which an entry is never served, since that is the clock the
  server judges expiry by.
- **Stale entries** (``stale_if_error``, the client's or one call's): a
  positive entry may be served that many seconds past its freshness, flagged
  ``stale=True``, only when the server cannot be reached. A newer negative
  answer replaces it, so a revocation that was seen is never undone by a
  stale entry.
- **Malformed tokens are never stored**, so a hit implies a well-formed token
  and the checksum check runs only on misses.

**A hit takes no lock.** The entries are a plain ``dict``, whose single
operations are atomic; an entry is never changed once stored (it is replaced
whole), except for its hit count. Eviction is CLOCK (second chance), the
approximation of least-recently-used that operating systems use for pages: a
hit counts itself on its entry; when the table is full, the oldest entry goes
unless it was hit since the hand last passed it, in which case it moves to
the back. An exact LRU would reorder a list on every read, which needs the lock
(cachetools' ``LRUCache`` did, and cost as much as the rest of a hit
together). Writers (store, evict, forget, clear, the in-flight table and the
miss counters) still share one lock, held for a dictionary operation or two,
never across I/O. A hit's count on its entry is the one write it makes,
without the lock: under the GIL an attribute ``+=`` is not interrupted in
practice; on a free-threaded build a count may be lost under contention,
never an answer. ``stats()`` adds the live entries' counts to those of the
entries gone.

**In flight**: both clients coalesce through the same table, each with its
own kind of future (``concurrent.futures`` for threads, ``asyncio`` for
tasks). :meth:`~ValidationCache.join` finds or starts the flight for a token
and hands out the cache's *generation*; :meth:`~ValidationCache.settle` stores
the fetched answer only if the generation is unchanged and the flight is still
the table's. :meth:`forget` and :meth:`clear` (a revoke, an extend,
``clear_cache()``, a reset of the event stream) bump it and detach every
flight; :meth:`evict` (a change event) detaches its token's flight. Either
way, an answer fetched before the change is never stored, and a validation
that starts after it never joins a request sent before it.

The clocks are this module's ``monotonic`` and ``wall_time`` (imported names,
which also spares the hot path an attribute lookup each): tests replace them
here to move time without sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from hashlib import sha256
from typing import Final, Generic, TypeVar

from amplify_auth_client._caller import Caller
from amplify_auth_client._models import CacheStats, Reason, ValidationResult
from amplify_auth_client.contract import TOKEN_LENGTH, missing_scopes, token_is_well_formed

#: The clocks (see the module's docstring); also the parser's, which refuses
#: a "valid" for a token already expired by the same wall clock.
monotonic = time.monotonic
wall_time = time.time

#: Answered locally for any token that fails the shape or checksum test.
MALFORMED = ValidationResult(valid=False, reason="malformed")

#: The types ``required_scopes`` is taken as is in (one ``type()`` test on the
#: hot path); anything else goes through :func:`scopes_of` first.
SCOPE_TYPES: Final = frozenset({tuple, list, set, frozenset})
#: Token hashes whose unreported hits a cache keeps after their entries left it
#: (see ValidationCache.harvest): memory stays bounded whatever the churn.
MAX_UNREPORTED: Final = 10_000

#: A flight's future: ``concurrent.futures.Future`` or ``asyncio.Future``.
F = TypeVar("F")


def scopes_of(required_scopes: Iterable[str]) -> tuple[str, ...]:
    """``required_scopes`` as a tuple, read once; a str or None is refused.

    An iterator would be used up by the first look (the scope check of a cache
    hit) and then seem empty to the next, which would let every token in.
    """
    if isinstance(required_scopes, str | bytes):
        # Iterating "read" would ask for the scopes "r", "e", "a" and "d".
        raise TypeError(
            "required_scopes must be a collection of scope names, not a single "
            f"{type(required_scopes).__name__}: write [{required_scopes!r}]"
        )
    if required_scopes is None:
        raise TypeError("required_scopes must be a collection of scope names; () asks for none")
    scopes = tuple(required_scopes)
    for scope in scopes:
        if not isinstance(scope, str):
            raise TypeError(f"scope names are strings, got {type(scope).__name__}")
    return scopes


@dataclass(frozen=True, slots=True)
class Answer:
    """What the server said about one token, ready to judge any required scopes.

    The three results are built once per answer, so a cache hit returns a
    shared object instead of building one: ``fresh`` for the callers whose
    request fetched it, ``hit`` for cache hits, ``stale`` for stale-if-error.
    """

    positive: bool
    scopes: tuple[str, ...]
    token_id: str | None
    name: str | None
    reason: Reason | None
    expires_at: datetime | None
    #: False for answers whose lifetime we cannot judge (see ``_base.parse_answer``).
    cacheable: bool = True
    owner: str | None = None
    #: A rotated token in its grace period: its successor's id.
    replaced_by: str | None = None
    scope_set: frozenset[str] = field(init=False, repr=False)
    #: The token's own expiry as a POSIX time; infinity for tokens that do not
    #: expire and for negative answers (an expired token stays expired).
    expires_ts: float = field(init=False, repr=False)
    fresh: ValidationResult = field(init=False, repr=False)
    hit: ValidationResult = field(init=False, repr=False)
    stale: ValidationResult = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # object.__setattr__: the documented way to fill derived fields of a frozen dataclass.
        base = ValidationResult(
            valid=self.positive,
            scopes=self.scopes,
            token_id=self.token_id,
            name=self.name,
            reason=None if self.positive else self.reason,
            expires_at=self.expires_at,
            owner=self.owner,
            replaced_by=self.replaced_by,
        )
        expires_ts = math.inf
        if self.positive and self.expires_at is not None:
            expires_ts = self.expires_at.timestamp()
        object.__setattr__(self, "scope_set", frozenset(self.scopes))
        object.__setattr__(self, "expires_ts", expires_ts)
        hit = replace(base, cached=True)
        stale = replace(base, cached=True, stale=True)
        # The Caller too, once per answer: a frozen dataclass costs a couple of
        # microseconds to build, more than the rest of a hit.
        caller = Caller.from_result(base)
        object.__setattr__(base, "caller", caller)
        object.__setattr__(hit, "caller", caller)
        object.__setattr__(stale, "caller", None if caller is None else replace(caller, stale=True))
        object.__setattr__(self, "fresh", base)
        object.__setattr__(self, "hit", hit)
        object.__setattr__(self, "stale", stale)

    def judge(self, required_scopes: Collection[str], base: ValidationResult) -> ValidationResult:
        """``base`` (one of the three results) if the scopes are held, else the shortfall.

        One pass over ``required_scopes``, so even an iterator would be judged
        whole (the clients hand in a tuple, list or set anyway).
        """
        if not self.positive:
            return base
        missing = missing_scopes(self.scope_set, required_scopes)
        if not missing:
            return base
        return replace(base, valid=False, reason="insufficient_scope", missing_scopes=missing)


class _Entry:
    """An answer and its deadlines, with what a hit needs copied into slots of its own.

    Never changed once stored, but for its hit count and ``granted`` (see the
    module's docstring): a reader holding no lock sees a whole entry, old or new.
    """

    __slots__ = (
        "answer",
        "expires_ts",
        "fresh_until",
        "granted",
        "hit",
        "hits",
        "reported",
        "scope_set",
        "seen",
        "stored_at",
    )

    def __init__(self, answer: Answer, stored_at: float, fresh_until: float) -> None:
        self.fresh_until = fresh_until
        self.expires_ts = answer.expires_ts
        self.hit = answer.hit
        self.scope_set = answer.scope_set
        self.answer = answer
        self.stored_at = stored_at
        #: Hits on this entry (the one write a hit makes), and their number when the
        #: eviction hand last passed it: "used since" is ``hits != seen``.
        self.hits = self.seen = 0
        #: Hits already handed to the usage reporter (see :meth:`ValidationCache.harvest`).
        self.reported = 0
        #: The last tuple of required scopes found held: the same tuple again (a
        #: route's, every request) is then held without looking. Only a tuple,
        #: which cannot change after the check.
        self.granted: tuple[str, ...] = ()

    def fresh_until_for(self, max_age: float | None) -> float:
        """When this entry stops being fresh for a caller who accepts answers ``max_age`` old."""
        if max_age is None:
            return self.fresh_until
        return min(self.fresh_until, self.stored_at + max_age)


class ValidationCache(Generic[F]):
    """A bounded, thread-safe map from token hash to the server's latest answer,
    and the table of validations in flight (whose futures are of type ``F``).

    >>> from concurrent.futures import Future
    >>> from amplify_auth_client import generate_token, hash_token
    >>> cache, token = ValidationCache(maxsize=10, ttl=30.0, negative_ttl=5.0), generate_token()
    >>> key, answer = hash_token(token), Answer(True, ("read",), "tok_1", "ci", None, None)
    >>> future, generation, fetch = cache.join(key, (), Future)
    >>> cache.settle(key, future, generation, answer)
    >>> cache.lookup(token, ["read"]).valid, cache.lookup(token, ["write"]).missing_scopes
    (True, ('write',))
    """

    def __init__(
        self,
        *,
        maxsize: int,
        ttl: float,
        negative_ttl: float,
        stale_if_error: float | None = None,
    ) -> None:
        self._entries: dict[str, _Entry] = {}
        self._maxsize = maxsize
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._stale_for = stale_if_error
        self._lock = threading.Lock()
        self._inflight: dict[str, F] = {}
        self._generation = 0
        self._hits = self._misses = self._coalesced = self._errors = self._stale = 0
        #: Hits of positive entries that left the table before a harvest, by hash:
        #: at most MAX_UNREPORTED hashes (more are dropped, not piled up).
        self._unreported: dict[str, int] = {}
        #: Callers waiting on a flight they did not send, by token hash: uses the
        #: server never sees (it answers the one request), reported once the
        #: flight's answer is positive.
        self._joined: dict[str, int] = {}

    # -- the hot path ----------------------------------------------------------

    def lookup(
        self, token: str, required_scopes: Collection[str], max_age: float | None = None
    ) -> ValidationResult | str:
        """A local answer for ``token`` if there is one; otherwise its cache key, to fetch.

        ``required_scopes`` must be a tuple, list, set or frozenset (see
        :data:`SCOPE_TYPES`): the clients pass anything else through
        :func:`scopes_of` first, since the miss path needs the scopes again.
        ``max_age`` (a caller's ``max_staleness``) refuses entries fetched
        longer ago than that; 0 refuses every entry. It is checked by the
        clients on the miss path only: a negative or NaN ``max_age`` finds no
        entry fresh, so it always gets there.
        Cheapest first: the length test turns most garbage away before it is
        hashed; the checksum test runs only on a miss, since malformed tokens
        are never stored. A hit returns the entry's shared result object.
        """
        if len(token) != TOKEN_LENGTH:
            return MALFORMED
        try:
            # hash_token's work, inlined: a function call is a tenth of a hit.
            key = sha256(token.encode()).hexdigest()
        except UnicodeEncodeError:  # an unpaired surrogate: no token has one
            return MALFORMED
        entry = self._entries.get(key)
        if entry is not None:
            fresh_until = entry.fresh_until if max_age is None else entry.fresh_until_for(max_age)
            if fresh_until > monotonic() and entry.expires_ts > wall_time():
                entry.hits += 1
                if required_scopes is entry.granted or not required_scopes:
                    return entry.hit
                if entry.scope_set.issuperset(required_scopes):
                    if type(required_scopes) is tuple:
                        entry.granted = required_scopes
                    return entry.hit
                return entry.answer.judge(required_scopes, entry.hit)
        if not token_is_well_formed(token):
            return MALFORMED
        return key

    # -- misses --------------------------------------------------------------

    def join(
        self,
        key: str,
        required_scopes: Collection[str],
        new_future: Callable[[], F],
        max_age: float | None = None,
    ) -> ValidationResult | tuple[F, int, bool]:
        """Count a miss and find who fetches: ``(future, generation, fetch)``.

        ``fetch`` True means the caller sends the request, then calls
        :meth:`settle` with the same ``future`` and ``generation`` and
        completes the future; every caller, the fetcher too, then waits on it.
        The entry is looked up again under the lock that guards the in-flight
        table: a caller that missed just before another's answer landed takes
        that answer instead of sending a second request. A caller with
        ``max_age`` 0 takes no entry, but does join a request already in
        flight: its answer is at most one round trip old.
        """
        with self._lock:
            entry = self._entries.get(key)
            if (
                entry is not None
                and entry.fresh_until_for(max_age) > monotonic()
                and entry.expires_ts > wall_time()
            ):
                entry.hits += 1  # as lookup's: stats() and the usage harvest read it
                return entry.answer.judge(required_scopes, entry.hit)
            self._misses += 1
            future = self._inflight.get(key)
            if future is not None:
                self._coalesced += 1
                self._joined[key] = self._joined.get(key, 0) + 1
                return future, self._generation, False
            future = self._inflight[key] = new_future()
            return future, self._generation, True

    def settle(self, key: str, future: F, generation: int, answer: Answer | None) -> None:
        """The fetcher's last step before completing ``future``: store, and end the flight.

        ``answer`` None means the fetch failed. The answer is stored only if no
        :meth:`forget` or :meth:`clear` came since :meth:`join` handed out
        ``generation`` and no :meth:`evict` detached this flight, and the
        flight is ended only if it is still this one.
        Both under one lock, so that no caller can find neither the entry nor
        the flight.
        """
        with self._lock:
            current = self._inflight.get(key) is future
            joined = self._joined.pop(key, 0) if current else 0
            if answer is None:
                self._errors += 1
            elif generation == self._generation and current:
                self._store(key, answer)
            if current:
                del self._inflight[key]
            if joined and answer is not None and answer.positive:
                self._keep_unreported(key, joined)

    def _store(self, key: str, answer: Answer) -> None:
        entries = self._entries
        if not self._maxsize:
            return
        # Out first, so that the new entry goes to the back of the eviction order.
        self._retire(key, entries.pop(key, None))
        if not answer.cacheable:
            # Not remembered, but it still supersedes what we had: an older
            # positive entry must not come back as a stale answer.
            return
        if len(entries) >= self._maxsize:
            self._evict_one()
        now = monotonic()
        # A negative answer is stored even with a zero TTL: it must replace a
        # positive entry that stale_if_error could otherwise still serve.
        ttl = self._ttl if answer.positive else self._negative_ttl
        entries[key] = _Entry(answer, now, now + ttl)

    def _evict_one(self) -> None:
        """CLOCK: drop the oldest entry not used since the hand last passed it."""
        entries = self._entries
        while entries:
            key, entry = next(iter(entries.items()))
            del entries[key]
            if entry.hits == entry.seen:
                self._retire(key, entry)
                return
            entry.seen = entry.hits  # a second chance: to the back
            entries[key] = entry

    def _retire(self, key: str, entry: _Entry | None) -> None:
        """Keep the hits of an entry that leaves the table in the cache's own count,
        and those not yet harvested for the next usage report."""
        if entry is None:
            return
        hits = entry.hits  # read once: a hit in another thread may be adding to it
        self._hits += hits
        if hits > entry.reported and entry.answer.positive:
            self._keep_unreported(key, hits - entry.reported)

    def _keep_unreported(self, key: str, count: int) -> None:
        """Hold ``count`` uses of ``key`` for the next report, within the bound."""
        if key in self._unreported or len(self._unreported) < MAX_UNREPORTED:
            self._unreported[key] = self._unreported.get(key, 0) + count

    # -- usage ---------------------------------------------------------------

    def harvest(self) -> dict[str, int]:
        """The hits on positive answers since the last harvest, by token hash.

        Uses of a token this cache answered (the server never saw them: it
        counts only the misses it answers). Read from the counts the hits
        already keep for eviction, so a hit does no work for usage at all;
        the harvest walks the table under the lock, once per report interval.
        """
        with self._lock:
            hits, self._unreported = self._unreported, {}
            for key, entry in self._entries.items():
                # Read once: a hit landing between two reads would be marked
                # reported and never sent (hits take no lock).
                seen = entry.hits
                count = seen - entry.reported
                if count > 0 and entry.answer.positive:
                    hits[key] = hits.get(key, 0) + count
                entry.reported = seen
            return hits

    def stale(
        self,
        key: str,
        required_scopes: Collection[str],
        *,
        max_age: float | None = None,
        stale_if_error: float | None = None,
    ) -> ValidationResult | None:
        """A positive answer kept past its freshness, when the server could not answer.

        ``stale_if_error`` (the call's, else the client's) is how long past
        its freshness (``max_age``, else ``cache_ttl``) the answer may serve.
        Never past the token's ``expires_at``, never a negative answer, and
        never anything when both are off.
        """
        grace = self._stale_for if stale_if_error is None else stale_if_error
        if grace is None:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or not entry.answer.positive or entry.expires_ts <= wall_time():
                return None
            now = monotonic()
            fresh_until = entry.fresh_until_for(max_age)
            if now < fresh_until:
                # Refreshed by another caller meanwhile: a fresh answer after all.
                self._hits += 1
                return entry.answer.judge(required_scopes, entry.hit)
            if now >= fresh_until + grace:
                return None
            self._stale += 1
            return entry.answer.judge(required_scopes, entry.answer.stale)

    # -- for operators -------------------------------------------------------

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self._hits + sum(entry.hits for entry in self._entries.values()),
                misses=self._misses,
                coalesced=self._coalesced,
                errors=self._errors,
                stale=self._stale,
                size=len(self._entries),
                maxsize=self._maxsize,
            )

    def forget(self, token_id: str) -> None:
        """Drop the entries of the token with this id, around a change this client makes to it.

        Every flight is detached too, whatever its token (one in flight is
        known by hash, not by id): its answer, fetched perhaps before the
        change, is not stored, and later callers start a new request. Entries
        are keyed by hash, so this scans them: fine for a management call,
        which is rare; never on the validation path.
        """
        with self._lock:
            self._new_generation()
            stale = [k for k, e in self._entries.items() if e.answer.token_id == token_id]
            for key in stale:
                self._retire(key, self._entries.pop(key))

    def evict(self, key: str) -> None:
        """Drop the entry of token hash ``key``, which the server says changed.

        Its flight, if any, is detached: the answer it brings may predate the
        change, so it is not stored, and a validation that starts now sends a
        request of its own. Flights for other tokens go on undisturbed.
        """
        with self._lock:
            self._inflight.pop(key, None)
            self._joined.pop(key, None)  # their answer may predate the change
            self._retire(key, self._entries.pop(key, None))

    def clear(self) -> None:
        """Forget every entry and detach every flight (counters are kept)."""
        with self._lock:
            self._new_generation()
            for key, entry in self._entries.items():
                self._retire(key, entry)
            self._entries.clear()

    def _new_generation(self) -> None:
        # The callers already waiting keep their futures; only the table lets go.
        self._generation += 1
        self._inflight = {}
        self._joined = {}

    def after_fork(self) -> None:
        """In a forked child: a new lock and no flights (their fetchers stayed in the parent).

        Entries are kept, unless the lock was held at the fork: another thread
        of the parent may have been halfway through changing them.
        """
        if self._lock.locked():
            self._hits += sum(entry.hits for entry in self._entries.values())
            self._entries = {}
        # The parent reports the hits made before the fork; the child, its own.
        for entry in self._entries.values():
            entry.reported = entry.hits
        self._unreported = {}
        self._joined = {}
        self._lock = threading.Lock()
        self._inflight = {}
        self._generation += 1
