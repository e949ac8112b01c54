"""Builders shared by the client tests: server answers in the HTTP contract's shapes."""

from __future__ import annotations

import os
import select
import signal
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

BASE_URL = "http://auth.test"
TOKEN_ID = "tok_0123456789abcdef"
OTHER_ID = "tok_fedcba9876543210"
CREATED_AT = "2026-01-01T12:00:00.123456Z"


def iso(moment: datetime) -> str:
    """A datetime as the server writes it: UTC with a ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def valid_body(
    scopes: Sequence[str] = ("read", "write"),
    *,
    token_id: str = TOKEN_ID,
    name: str = "billing",
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "valid": True,
        "scopes": list(scopes),
        "token_id": token_id,
        "name": name,
        "reason": None,
        "missing_scopes": [],
        "expires_at": None if expires_at is None else iso(expires_at),
    }


def invalid_body(
    reason: str, *, token_id: str | None = None, name: str | None = None
) -> dict[str, Any]:
    return {
        "valid": False,
        "scopes": [],
        "token_id": token_id,
        "name": name,
        "reason": reason,
        "missing_scopes": [],
        "expires_at": None,
    }


def valid(scopes: Sequence[str] = ("read", "write"), **fields: Any) -> httpx.Response:
    """A 200 from /auth/validate saying the token is valid with ``scopes``."""
    return httpx.Response(200, json=valid_body(scopes, **fields))


def invalid(reason: str, **fields: Any) -> httpx.Response:
    """A 200 from /auth/validate saying the token is not valid, for ``reason``."""
    return httpx.Response(200, json=invalid_body(reason, **fields))


def error(status: int, code: str, detail: str, **extra: Any) -> httpx.Response:
    """An error answer in the contract's ``{"error", "detail"}`` shape."""
    headers = {"Retry-After": "1"} if status == 503 else None
    return httpx.Response(status, json={"error": code, "detail": detail, **extra}, headers=headers)


def page(*items: dict[str, Any], next_cursor: str | None = None) -> httpx.Response:
    """A 200 with one page of a listing, in the contract's ``{"items", "next_cursor"}`` shape."""
    return httpx.Response(200, json={"items": list(items), "next_cursor": next_cursor})


def record(
    token_id: str = TOKEN_ID,
    *,
    status: str = "active",
    expires_at: str | None = "2026-02-01T12:00:00Z",
    revoked_at: str | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """A management token record."""
    return {
        "owner": owner,
        "token_id": token_id,
        "name": "billing",
        "scopes": ["invoices:read"],
        "status": status,
        "created_at": CREATED_AT,
        "expires_at": expires_at,
        "revoked_at": revoked_at,
        "description": "billing service",
        "metadata": {"team": "payments"},
    }


class FakeClock:
    """Both clocks the cache reads, moved by hand: tests never sleep."""

    def __init__(self) -> None:
        self.mono = 10_000.0
        self.wall = datetime(2026, 1, 1, tzinfo=UTC).timestamp()

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall, UTC)

    def in_(self, seconds: float) -> datetime:
        """The wall-clock moment ``seconds`` from now."""
        return self.now() + timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def in_child(work: Callable[[], str], timeout: float = 10.0) -> str:
    """``work()`` in a forked child: what it returned or raised, or that it hung."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's teardown
        try:
            os.close(read_end)
            try:
                report = work()
            except BaseException as exc:
                report = f"{type(exc).__name__}: {exc}"
            os.write(write_end, report.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            return "the child hung"
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
