"""Failed admin authentications: throttled, logged, and audited in aggregate.

A 401 or 403 on a management route is what guessing an admin token, or
probing with a stolen service token, looks like; each used to leave no
trace. Now each is:

* counted against the client's ``admin`` budget
  (:mod:`amplify_auth_server.throttle`): past it, 429;
* logged, once per client, route and outcome per window (the first of them;
  the window's end logs how many followed);
* audited as ``admin_auth_failed``: one row per client, presented token,
  method, route template and status per window (``AUDIT_FAILURE_WINDOW``),
  with the count, written by the single writer when the window ends (and
  at shut-down). At most :data:`MAX_KEYS` rows per window per process: a
  flood from more clients than that shares one overflow row, so it cannot
  fill the audit table faster than ``MAX_KEYS`` rows a window.

What a row says: who (the presented token's id when it is a known token,
else ``anonymous``; the client's address) and what was attempted (the
method and the route *template*, never the URL, whose path may hold a
pasted secret). Never the raw token: only its id, looked up by hash.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from starlette.requests import Request

from amplify_auth_client.contract import bearer_token, iso, token_is_well_formed
from amplify_auth_server.background import Background
from amplify_auth_server.commands import CommandQueue, RecordDenials
from amplify_auth_server.errors import AuthServerError, TooManyFailures
from amplify_auth_server.models import ANONYMOUS_ACTOR, Actor, utcnow
from amplify_auth_server.throttle import FailureThrottle, client_of
from amplify_auth_server.validation import Validator

logger = logging.getLogger("amplify_auth_server.audit")

#: Distinct (client, token, route, status) rows one process writes per window, at most.
MAX_KEYS: Final = 256


@dataclass(frozen=True, slots=True)
class _Key:
    client: str
    actor: str
    name: str | None
    method: str
    route: str
    status: int


#: Where failures go once a window holds MAX_KEYS keys.
_OVERFLOW: Final = _Key("*", ANONYMOUS_ACTOR, None, "*", "*", 0)


@dataclass(slots=True)
class _Tally:
    count: int
    first: datetime
    last: datetime


class Denials(Background):
    """Counts failed admin authentications per window; the loop writes each window's rows."""

    task_name = "amplify-auth-denials"

    def __init__(
        self,
        queue: CommandQueue,
        throttle: FailureThrottle,
        validator: Validator,
        *,
        window: float,
    ) -> None:
        self._queue = queue
        self._throttle = throttle
        self._validator = validator
        self.window = window
        self._pending: dict[_Key, _Tally] = {}

    async def refused(self, request: Request, refusal: AuthServerError) -> AuthServerError:
        """What to answer instead of ``refusal`` (a 401 or 403): itself, or 429 past the
        client's budget. Either way, logged and counted for the audit."""
        client = client_of(request.scope)
        answer: AuthServerError = refusal
        try:
            await self._throttle.failed("admin", client)
        except TooManyFailures as throttled:
            answer = throttled
        actor, name = await self._presented(request)
        route = getattr(request.scope.get("route"), "path", "*")
        self.record(_Key(client, actor, name, request.method, route, answer.status_code))
        return answer

    async def _presented(self, request: Request) -> tuple[str, str | None]:
        """The id and name of the token presented, if it is one we know; else anonymous."""
        header = request.headers.get("authorization")
        token = None if header is None else bearer_token(header)
        if token is None or not token_is_well_formed(token):
            return ANONYMOUS_ACTOR, None
        # The check just looked it up: a cache hit, by hash.
        state = await self._validator.state_of(token)
        if state is None or not state.known or state.token_id is None:
            return ANONYMOUS_ACTOR, None
        return state.token_id, state.name

    def record(self, key: _Key) -> None:
        now = utcnow()
        tally = self._pending.get(key)
        if tally is None:
            if len(self._pending) >= MAX_KEYS:
                key = _OVERFLOW
                tally = self._pending.get(key)
            if tally is None:
                self._pending[key] = _Tally(1, now, now)
                if key == _OVERFLOW:
                    logger.warning(
                        "admin authentication failures from more than %d clients, routes and "
                        "tokens this window: the rest are audited together",
                        MAX_KEYS,
                    )
                    return
                logger.warning(
                    "admin authentication failed: %d on %s %s from %s, token %s",
                    key.status,
                    key.method,
                    key.route,
                    key.client,
                    key.actor,
                )
                return
        tally.count += 1
        tally.last = now

    async def run(self) -> None:
        while True:
            # The window's length is the loop's period: a timer, not a wait for an event.
            await asyncio.sleep(self.window)
            await self.flush()

    async def stop(self) -> None:
        await super().stop()
        await self.flush()

    async def flush(self) -> None:
        """Write the window's rows (one per key, with its count) through the writer."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        for key, tally in pending.items():
            if tally.count > 1:
                logger.warning(
                    "admin authentication failed %d times on %s %s from %s since %s",
                    tally.count,
                    key.method,
                    key.route,
                    key.client,
                    iso(tally.first),
                )
        entries = tuple(
            (Actor(key.actor, key.name), _token_id(key), _details(key, tally))
            for key, tally in pending.items()
        )
        try:
            await self._queue.submit(RecordDenials(entries=entries))
        except AuthServerError as exc:
            # The database is away: the counts wait for the next window.
            logger.warning("failed admin authentications not audited yet: %s", exc.detail)
            for key, tally in pending.items():
                self._merge(key, tally)

    def _merge(self, key: _Key, tally: _Tally) -> None:
        held = self._pending.get(key)
        if held is None and len(self._pending) >= MAX_KEYS:
            key, held = _OVERFLOW, self._pending.get(_OVERFLOW)
        if held is None:
            self._pending[key] = tally
        else:
            held.count += tally.count
            held.first = min(held.first, tally.first)
            held.last = max(held.last, tally.last)


def _token_id(key: _Key) -> str | None:
    return None if key.actor == ANONYMOUS_ACTOR else key.actor


def _details(key: _Key, tally: _Tally) -> dict[str, Any]:
    details: dict[str, Any] = {
        "client": key.client,
        "method": key.method,
        "route": key.route,
        "status": key.status,
        "count": tally.count,
        "first_at": iso(tally.first),
        "last_at": iso(tally.last),
    }
    if key == _OVERFLOW:
        details["overflow"] = True
    return details
