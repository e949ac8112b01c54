"""Sign-in throttling: a bounded count of failed attempts per client address.

Two small calls are all the console asks (:meth:`SignInThrottle.allowed`
before checking a token, :meth:`SignInThrottle.failed` after a refusal), so
a shared throttle (``limits`` over Redis) can take this one's place. This
one is in process: enough to turn guessing into a crawl, never a way to
fill memory (at most :data:`MAX_CLIENTS` addresses are remembered).
Successful sign-ins are not counted: only a guesser keeps failing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from cachetools import TTLCache

#: Failed attempts one address may make before it has to pause.
ATTEMPTS: Final = 10
WINDOW: Final = 60.0
MAX_CLIENTS: Final = 10_000


class SignInThrottle:
    """At most ``attempts`` failed sign-ins per client without a pause of ``window`` seconds.

    Each failure restarts the client's window (that is how the cache keeps
    time), so steady guessing stays refused; a client that went over is
    let in again ``window`` seconds after its last counted failure.
    """

    def __init__(
        self,
        *,
        attempts: int = ATTEMPTS,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._attempts = attempts
        self._failures: TTLCache[str, int] = TTLCache(MAX_CLIENTS, window, timer=clock)

    def allowed(self, client: str) -> bool:
        """Whether ``client`` may try a token now."""
        return self._failures.get(client, 0) < self._attempts

    def failed(self, client: str) -> None:
        """Count a refused attempt by ``client``."""
        self._failures[client] = min(self._failures.get(client, 0) + 1, self._attempts)
