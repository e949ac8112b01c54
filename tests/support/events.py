"""A raw subscriber to ``GET /auth/events``, for tests that read the stream itself.

It reads the wire line by line (comments included, which SSE client
libraries hide), so tests can see keepalives as well as events. Every read
waits at most ``timeout`` seconds: a missing event fails the test with a
``ReadTimeout`` instead of hanging it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    kind: str
    id: str | None
    data: dict[str, Any]
    raw: str = field(repr=False)


class EventStream:
    """One subscription; use as a context manager."""

    def __init__(
        self, base_url: str, *, last_event_id: str | None = None, timeout: float = 10.0
    ) -> None:
        headers: dict[str, str | bytes] = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            # As bytes: a test may send what no well-behaved client would.
            headers["Last-Event-ID"] = last_event_id.encode()
        self._client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout))
        self._stream = self._client.stream("GET", "/auth/events", headers=headers)
        self.response: httpx.Response
        self._lines: Iterator[str]
        self.comments: list[str] = []
        self.last_id: str | None = last_event_id

    def __enter__(self) -> EventStream:
        self.response = self._stream.__enter__()
        self._lines = self.response.iter_lines()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stream.__exit__(exc_type, exc, tb)
        self._client.close()

    def next(self) -> Event:
        """The next event (comments before it are kept in :attr:`comments`)."""
        fields: dict[str, str] = {}
        raw: list[str] = []
        for line in self._lines:
            raw.append(line)
            if line == "":
                if "event" in fields or "data" in fields:
                    if "id" in fields:
                        self.last_id = fields["id"]
                    return Event(
                        fields.get("event", "message"),
                        fields.get("id"),
                        json.loads(fields.get("data", "null")),
                        "\n".join(raw),
                    )
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        raise EOFError("the server ended the stream")

    def comment(self) -> str:
        """The next comment line (a keepalive), skipping anything else."""
        for line in self._lines:
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                return self.comments[-1]
        raise EOFError("the server ended the stream")

    def until(self, kind: str) -> Event:
        """Skip to the next event of ``kind``."""
        while True:
            event = self.next()
            if event.kind == kind:
                return event

    def ended(self) -> bool:
        """Read on until the stream ends: True if it did (False never returns: it times out)."""
        try:
            while True:
                self.next()
        except EOFError:
            return True


def stream_status(base_url: str) -> int:
    """The status ``GET /auth/events`` answers with; the stream, if any, is closed unread."""
    with (
        httpx.Client(base_url=base_url, timeout=10) as client,
        client.stream("GET", "/auth/events") as response,
    ):
        return response.status_code
