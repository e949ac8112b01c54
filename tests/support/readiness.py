"""Waiting for a process the test just started to serve HTTP: the one polling loop of the tests.

A server process has no way to tell its parent "I am listening" besides
listening, so the tests poll ``/health`` until it answers, with a bounded
wait. Kept in one place so every caller fails the same way: at once, with
the process's log, when it exits or when the deadline passes.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

#: Between two attempts: short, since a connection refused costs nothing.
POLL_INTERVAL = 0.05


def wait_until_serving(
    process: subprocess.Popen[bytes], url: str, log: Path, *, timeout: float = 30.0
) -> httpx.Response:
    """Poll ``url/health`` until it answers (any status); return that answer.

    Fails with the content of ``log`` if ``process`` exits first or nothing
    answers within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} before serving:\n{_read(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not serving {url} after {timeout}s:\n{_read(log)}")
        try:
            return httpx.get(url + "/health", timeout=1.0)
        except httpx.TransportError:
            time.sleep(POLL_INTERVAL)  # readiness polling: the process has no other signal


def _read(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else "(no log)"
