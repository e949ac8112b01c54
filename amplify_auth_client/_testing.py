"""The testing switch: what :func:`set_testing` turns on for the whole process.

One switch for everything a test does not want from the SDK: retry waits
become instant (see :mod:`._retry`), and new clients start no revocation
subscription (a background thread talking to the server; see
:mod:`._base`). Its own module, since both read it.
"""

from __future__ import annotations

from types import TracebackType
from typing import Final


class _Testing:
    # A mutable holder rather than a bare global, so the hot path reads one attribute.
    __slots__ = ("enabled",)

    def __init__(self) -> None:
        self.enabled = False


TESTING: Final = _Testing()


class _TestingRestorer:
    """What :func:`set_testing` returns: usable as a context manager that restores."""

    def __init__(self, previous: bool) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        TESTING.enabled = self._previous


def set_testing(enabled: bool = True) -> _TestingRestorer:
    """Make retry waits instant, and clients unsubscribed, (``True``), or real again
    (``False``), process-wide.

    Attempts are still made and counted; only the sleeping between them is
    skipped. Clients built meanwhile open no revocation subscription unless
    asked to (``subscribe_revocations=True``). Use it as a plain call in a
    fixture, or as a context manager that restores the previous setting on exit::

        with set_testing(True):
            client.validate(token)  # an outage now fails after 4 instant attempts
    """
    previous = TESTING.enabled
    TESTING.enabled = enabled
    return _TestingRestorer(previous)


def is_testing() -> bool:
    """Whether :func:`set_testing` is on."""
    return TESTING.enabled
