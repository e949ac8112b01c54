"""Console sessions: a server-side record per signed-in browser, never the raw token.

The browser holds only a random session id (in an ``HttpOnly`` cookie); the
server keeps, under that id's SHA-256, which token opened the session (its
id and hash), the session's CSRF token and when it was last used. A session
ends after :data:`IDLE_TIMEOUT` without a request, at sign-out, and (checked
on every request, see :mod:`._access`) as soon as its token stops being valid.

Kept in process, bounded: a session belongs to the server process that
opened it (one process, or sticky sessions in front of several). A store
shared through Redis can replace this one behind the same three methods.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

#: How long a session lives without a request.
IDLE_TIMEOUT: Final = 30 * 60.0
#: Sessions one process keeps at most; past it, the least recently used ends.
MAX_SESSIONS: Final = 10_000
#: Create forms one session may have open at once (tabs).
MAX_OPEN_FORMS: Final = 20


def _key(session_id: str) -> str:
    # Memory holds the cookie's hash, not the cookie: a dump of the store
    # gives nothing to present.
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(slots=True)
class Session:
    """Who is signed in: the token that opened the session, by id and hash."""

    token_id: str
    token_hash: str
    name: str | None
    #: Sent back in every form, checked on every state-changing request.
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    last_seen: float = 0.0
    #: A one-line note for the next page (what the last change did).
    flash: str | None = None
    #: Create forms handed out and not yet sent: each creates one token, once
    #: (a reload or a back-and-forward that sends the form again creates nothing).
    forms: list[str] = field(default_factory=list)

    def hand_out_form(self) -> str:
        """A fresh create form's one-time id (the last :data:`MAX_OPEN_FORMS` stay open)."""
        form_id = secrets.token_urlsafe(16)
        self.forms = [*self.forms[-(MAX_OPEN_FORMS - 1) :], form_id]
        return form_id

    def take_form(self, form_id: str) -> bool:
        """Whether ``form_id`` was open; it is closed from now on."""
        if form_id in self.forms:
            self.forms.remove(form_id)
            return True
        return False

    def __repr__(self) -> str:  # no hash, no CSRF token in a log line
        return f"Session(token_id={self.token_id!r})"


class SessionStore:
    """The console's sessions of this process (``clock`` injectable for tests)."""

    def __init__(
        self,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idle_timeout = idle_timeout
        self._max = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def open(self, session: Session) -> str:
        """Keep ``session``; returns the id the browser is to present."""
        session_id = secrets.token_urlsafe(32)
        session.last_seen = self._clock()
        self._sessions[_key(session_id)] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session_id

    def get(self, session_id: str) -> Session | None:
        """The live session of ``session_id``, touched; None if unknown or idle too long."""
        key = _key(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self._idle_timeout:
            del self._sessions[key]
            return None
        session.last_seen = now
        self._sessions.move_to_end(key)
        return session

    def close(self, session_id: str) -> None:
        self._sessions.pop(_key(session_id), None)

    def __len__(self) -> int:
        return len(self._sessions)
