"""Waiting for what a server reaches on its own schedule (a reconnect, a replay)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], object], timeout: float = 15.0) -> None:
    """Poll ``condition`` until it is true; fail after ``timeout`` seconds.

    For states with no event to wait on (a background reconnect, a replay
    loop): the poll is the synchronisation, and the timeout only a guard.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)
