"""Helpers for the server's API tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    """An HTTP client that sends the server's admin token."""
    with server.client() as client:
        yield client


@pytest.fixture
def anonymous(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client(token=None) as client:
        yield client


def create(admin: httpx.Client, **body: Any) -> dict[str, Any]:
    """Create a token through the API; returns the 201 body (with the raw token)."""
    body.setdefault("name", "test-token")
    body.setdefault("scopes", ["read"])
    response = admin.post("/auth/tokens", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def validate(client: httpx.Client, token: str, *scopes: str) -> dict[str, Any]:
    response = client.post("/auth/validate", json={"token": token, "required_scopes": list(scopes)})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer
