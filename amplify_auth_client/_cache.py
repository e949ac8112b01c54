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
  unknown, revoked and expired tokens), and the token's own ``expires_at`` on
  the wall clock, past which an entry is never served, since that is the clock
  the server judges expiry by. cachetools' ``TTLCache`` would cost more than the
  rest of a hit together; an ``LRUCache`` bounds the size.
- **Stale entries** (``stale_if_error``): a positive entry is kept up to that
  many seconds past its fresh-until time and served, flagged ``stale=True``,
  only when the server cannot be reached. A newer negative answer replaces
  it, so a revocation that was seen is never undone by a stale entry.
- **Malformed tokens are never stored**, so a hit implies a well-formed token
  and the checksum check runs only on misses.

cachetools is not thread-safe (even a read reorders the LRU list), so one
lock guards the entries, the counters and the in-flight table used for
coalescing; it is held for a dictionary operation or two, never across I/O.

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

from cachetools import LRUCache

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
        )
        expires_ts = math.inf
        if self.positive and self.expires_at is not None:
            expires_ts = self.expires_at.timestamp()
        object.__setattr__(self, "scope_set", frozenset(self.scopes))
        object.__setattr__(self, "expires_ts", expires_ts)
        object.__setattr__(self, "fresh", base)
        object.__setattr__(self, "hit", replace(base, cached=True))
        object.__setattr__(self, "stale", replace(base, cached=True, stale=True))

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
    """An answer and its deadlines, with what a hit needs copied into slots of its own."""

    __slots__ = ("answer", "expires_ts", "fresh_until", "hit", "scope_set", "stale_until")

    def __init__(self, answer: Answer, fresh_until: float, stale_until: float) -> None:
        self.fresh_until = fresh_until
        self.expires_ts = answer.expires_ts
        self.hit = answer.hit
        self.scope_set = answer.scope_set
        self.answer = answer
        self.stale_until = stale_until


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
        self._entries: LRUCache[str, _Entry] | None = LRUCache(maxsize) if maxsize > 0 else None
        self._maxsize = maxsize
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._stale_for = stale_if_error
        self._lock = threading.Lock()
        self._inflight: dict[str, F] = {}
        self._generation = 0
        self._hits = self._misses = self._coalesced = self._errors = self._stale = 0

    # -- the hot path ----------------------------------------------------------

    def lookup(self, token: str, required_scopes: Collection[str]) -> ValidationResult | str:
        """A local answer for ``token`` if there is one; otherwise its cache key, to fetch.

        ``required_scopes`` must be a tuple, list, set or frozenset (see
        :data:`SCOPE_TYPES`): the clients pass anything else through
        :func:`scopes_of` first, since the miss path needs the scopes again.
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
        entries = self._entries
        if entries is not None:
            lock = self._lock
            # acquire/release rather than `with`: half the cost on CPython 3.11,
            # and this runs on every request of every service that embeds us.
            lock.acquire()
            try:
                # [] rather than .get(): one Python call fewer on every hit.
                entry = entries[key]
                fresh = entry.fresh_until > monotonic() and entry.expires_ts > wall_time()
                if fresh:
                    self._hits += 1
            except KeyError:
                fresh = False
            finally:
                lock.release()
            if fresh:
                if not required_scopes or entry.scope_set.issuperset(required_scopes):
                    return entry.hit
                return entry.answer.judge(required_scopes, entry.hit)
        if not token_is_well_formed(token):
            return MALFORMED
        return key

    # -- misses --------------------------------------------------------------

    def join(
        self, key: str, required_scopes: Collection[str], new_future: Callable[[], F]
    ) -> ValidationResult | tuple[F, int, bool]:
        """Count a miss and find who fetches: ``(future, generation, fetch)``.

        ``fetch`` True means the caller sends the request, then calls
        :meth:`settle` with the same ``future`` and ``generation`` and
        completes the future; every caller, the fetcher too, then waits on it.
        The entry is looked up again under the lock that guards the in-flight
        table: a caller that missed just before another's answer landed takes
        that answer instead of sending a second request.
        """
        with self._lock:
            if self._entries is not None:
                entry = self._entries.get(key)
                if (
                    entry is not None
                    and entry.fresh_until > monotonic()
                    and entry.expires_ts > wall_time()
                ):
                    self._hits += 1
                    return entry.answer.judge(required_scopes, entry.hit)
            self._misses += 1
            future = self._inflight.get(key)
            if future is not None:
                self._coalesced += 1
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
            if answer is None:
                self._errors += 1
            elif generation == self._generation and current:
                self._store(key, answer)
            if current:
                del self._inflight[key]

    def _store(self, key: str, answer: Answer) -> None:
        if self._entries is None:
            return
        if not answer.cacheable:
            # Not remembered, but it still supersedes what we had: an older
            # positive entry must not come back as a stale answer.
            self._entries.pop(key, None)
            return
        now = monotonic()
        if answer.positive:
            fresh_until = now + self._ttl
            stale_until = fresh_until + (self._stale_for or 0.0)
        else:
            # Stored even with a zero TTL: it must replace a positive entry
            # that stale_if_error could otherwise still serve.
            fresh_until = stale_until = now + self._negative_ttl
        self._entries[key] = _Entry(answer, fresh_until, stale_until)

    def stale(self, key: str, required_scopes: Collection[str]) -> ValidationResult | None:
        """A positive answer kept for ``stale_if_error``, when the server could not answer.

        Never past the token's ``expires_at``, never a negative answer, and
        never anything when ``stale_if_error`` is off.
        """
        if self._stale_for is None or self._entries is None:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or not entry.answer.positive or entry.expires_ts <= wall_time():
                return None
            now = monotonic()
            if now < entry.fresh_until:
                # Refreshed by another caller meanwhile: a fresh answer after all.
                self._hits += 1
                return entry.answer.judge(required_scopes, entry.hit)
            if now >= entry.stale_until:
                return None
            self._stale += 1
            return entry.answer.judge(required_scopes, entry.answer.stale)

    # -- for operators -------------------------------------------------------

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                coalesced=self._coalesced,
                errors=self._errors,
                stale=self._stale,
                size=0 if self._entries is None else len(self._entries),
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
            if self._entries is None:
                return
            stale = [k for k, e in self._entries.items() if e.answer.token_id == token_id]
            for key in stale:
                del self._entries[key]

    def evict(self, key: str) -> None:
        """Drop the entry of token hash ``key``, which the server says changed.

        Its flight, if any, is detached: the answer it brings may predate the
        change, so it is not stored, and a validation that starts now sends a
        request of its own. Flights for other tokens go on undisturbed.
        """
        with self._lock:
            self._inflight.pop(key, None)
            if self._entries is not None:
                self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget every entry and detach every flight (counters are kept)."""
        with self._lock:
            self._new_generation()
            if self._entries is not None:
                self._entries.clear()

    def _new_generation(self) -> None:
        # The callers already waiting keep their futures; only the table lets go.
        self._generation += 1
        self._inflight = {}

    def after_fork(self) -> None:
        """In a forked child: a new lock and no flights (their fetchers stayed in the parent).

        Entries are kept, unless the lock was held at the fork: another thread
        of the parent may have been halfway through changing them.
        """
        if self._lock.locked() and self._entries is not None:
            self._entries = LRUCache(self._maxsize)
        self._lock = threading.Lock()
        self._inflight = {}
        self._generation += 1
