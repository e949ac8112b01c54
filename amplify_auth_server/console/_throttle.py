"""Sign-in throttling: a bounded count of attempts per client address.

One small function, :meth:`SignInThrottle.attempt`, is all the console asks,
so a shared throttle (``limits`` over Redis) can take its place. This one is
in process: enough to turn guessing into a crawl, never a way to fill memory
(at most :data:`MAX_CLIENTS` addresses are remembered).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from cachetools import TTLCache

#: Attempts one address may make per window.
ATTEMPTS: Final = 10
WINDOW: Final = 60.0
MAX_CLIENTS: Final = 10_000


class SignInThrottle:
    """At most ``attempts`` sign-ins per client without a pause of ``window`` seconds.

    Each counted attempt restarts the client's window (that is how the cache
    keeps time), so steady guessing is refused for good, and a client that
    went over waits ``window`` seconds from its first refused attempt.
    """

    def __init__(
        self,
        *,
        attempts: int = ATTEMPTS,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._attempts = attempts
        self._counts: TTLCache[str, int] = TTLCache(MAX_CLIENTS, window, timer=clock)

    def attempt(self, client: str) -> bool:
        """Count one attempt by ``client``; whether it may go ahead."""
        count = self._counts.get(client, 0) + 1
        if count <= self._attempts + 1:
            self._counts[client] = count
        return count <= self._attempts
