"""The create fast path and the FastAPI route behind it answer alike, and it takes the
creates it is for.

Two apps, each on its own database with the same admin token: one as served,
one without :class:`CreateFastPath`. Every request goes to both; their
answers (status, headers, body with the drawn values masked), their audit
trails and their latency metrics must match, and the served app's router
must see only the requests the fast path leaves to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from amplify_auth_client import generate_token
from amplify_auth_server import Settings, create_app
from amplify_auth_server.middleware import CreateFastPath

pytestmark = pytest.mark.anyio

#: What differs between two creates of the same body: drawn, or the time.
_DRAWN: Final = ("token", "token_id", "created_at", "expires_at")
_HEADERS: Final = ("content-type", "cache-control", "idempotent-replayed", "allow")


class _Seen:
    """Innermost middleware of the served app: the requests that reached its router."""

    def __init__(self, app: ASGIApp, *, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


def _app(directory: Path, admin: str) -> FastAPI:
    directory.mkdir()
    settings = Settings(
        database_url=f"sqlite:///{directory / 'auth.db'}", auth_admin_token=admin, _env_file=None
    )
    return create_app(settings)


def _shape(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    """An answer with a create's drawn values replaced by their names."""
    body = response.json()
    if response.status_code in (200, 201) and isinstance(body, dict):
        body = {k: k if k in _DRAWN and v is not None else v for k, v in body.items()}
    headers = {name: response.headers[name] for name in _HEADERS if name in response.headers}
    return response.status_code, headers, body


@dataclass
class Pair:
    fast: httpx.AsyncClient
    routed: httpx.AsyncClient
    #: What reached the fast app's router.
    seen: list[str]
    admin: str

    async def both(
        self, body: bytes | None = None, *, auth: str | None = "admin", **kwargs: Any
    ) -> tuple[httpx.Response, httpx.Response]:
        """The same create sent to both apps; ``auth`` is a bearer token, "admin", or None."""
        headers = dict(kwargs.pop("headers", {}))
        if auth is not None:
            headers.setdefault("Authorization", f"Bearer {self.admin if auth == 'admin' else auth}")
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        url = kwargs.pop("url", "/auth/tokens")
        one = await self.fast.post(url, content=body, headers=headers, **kwargs)
        two = await self.routed.post(url, content=body, headers=headers, **kwargs)
        assert _shape(one) == _shape(two), (body, headers)
        return one, two

    async def make(self, body: bytes) -> tuple[str, str]:
        """A token made on each app with ``body``: (fast's, routed's)."""
        one, two = await self.both(body)
        assert one.status_code == 201, one.text
        return one.json()["token"], two.json()["token"]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    admin = generate_token()
    seen: list[str] = []
    fast = _app(tmp_path / "fast", admin)
    fast.add_middleware(_Seen, seen=seen)
    fast.user_middleware.append(fast.user_middleware.pop(0))  # innermost: at the router
    routed = _app(tmp_path / "routed", admin)
    routed.user_middleware = [m for m in routed.user_middleware if m.cls is not CreateFastPath]
    async with (
        fast.router.lifespan_context(fast),
        routed.router.lifespan_context(routed),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=fast), base_url="http://f") as one,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=routed), base_url="http://r") as two,
    ):
        yield Pair(one, two, seen, admin)


async def test_creates_it_takes_are_answered_as_the_route_answers_them(pair: Pair) -> None:
    full = (
        b'{"name": "billing", "scopes": ["write", "read"], "ttl_days": 30, '
        b'"description": "caf\xc3\xa9 \\u00e9", "metadata": {"team": "payments"}}'
    )
    key = {"Idempotency-Key": "create-1"}
    answers = [
        await pair.both(b'{"name": "plain", "scopes": ["read"]}'),
        await pair.both(full),
        await pair.both(b'{"name": "keyed", "scopes": ["read"]}', headers=key),
        # The same key and body again: the first create, without its token.
        await pair.both(b'{"name": "keyed", "scopes": ["read"]}', headers=key),
        # The same key, another body: the writer's 422.
        await pair.both(b'{"name": "other", "scopes": ["read"]}', headers=key),
        await pair.both(b'{"name": "owned", "scopes": ["read"], "owner": "team-a"}'),
        # tokens:manage without an owner: the grant's 422.
        await pair.both(b'{"name": "delegate", "scopes": ["tokens:manage"]}'),
    ]
    assert [one.status_code for one, _ in answers] == [201, 201, 201, 200, 422, 201, 422]
    assert answers[3][0].headers["idempotent-replayed"] == "true"
    assert answers[3][0].json()["token"] is None
    assert answers[2][0].json()["token_id"] == answers[3][0].json()["token_id"]
    assert pair.seen == []  # every one taken by the fast path
    # What the fast path made is the token it answered.
    made = answers[1][0].json()
    shown = (await pair.fast.get(f"/auth/tokens/{made['token_id']}", headers=_bearer(pair))).json()
    assert (shown["scopes"], shown["description"]) == (["write", "read"], "café é")
    checked = await pair.fast.post("/auth/validate", json={"token": made["token"]})
    assert checked.json()["valid"] is True


async def test_what_it_leaves_to_the_route_gets_the_route_s_answer(pair: Pair) -> None:
    good = b'{"name": "n", "scopes": ["read"]}'
    left = [
        await pair.both(good, params={"x": "1"}),
        await pair.both(good, headers={"Idempotency-Key": "has space"}),
        await pair.both(good, headers={"Idempotency-Key": "k" * 256}),
        await pair.both(b'{"name": "n"}'),
        await pair.both(b'{"name": "n", "scopes": ["read"], "extra": 1}'),
        await pair.both(b'{"name": "n", "scopes": "read"}'),
        await pair.both(b'{"name": "n", "scopes": ["read"], "ttl_days": "5"}'),
        await pair.both(b'{"name": "n", "scopes": ["read", "read"]}'),
        await pair.both(b"[]"),
        await pair.both(b"null"),
        await pair.both(None),
        await pair.both(b'{"name": "n"}', auth=None),
    ]
    assert [one.status_code for one, _ in left] == [422] * 11 + [401]
    assert pair.seen == ["POST /auth/tokens"] * len(left)
    # Refused before the router on both apps: the strict body check's own answers.
    pair.seen.clear()
    before = [
        await pair.both(good, headers={"Content-Type": "text/plain"}),
        await pair.both(b'{"name": "n", "name": "m", "scopes": ["read"]}'),
        await pair.both(b"{not json"),
    ]
    assert [one.status_code for one, _ in before] == [415, 422, 422]
    assert pair.seen == []


async def test_refusals_are_answered_and_audited_as_the_route_does(pair: Pair) -> None:
    plain = await pair.make(b'{"name": "plain", "scopes": ["read"]}')
    delegate = await pair.make(
        b'{"name": "delegate", "scopes": ["tokens:manage", "read"], "owner": "team-a"}'
    )
    refusals = [
        await pair.both(b'{"name": "n", "scopes": ["read"]}', auth=None),
        await pair.both(b'{"name": "n", "scopes": ["read"]}', auth=generate_token()),
        await pair.both(b'{"name": "n", "scopes": ["read"]}', headers={"Authorization": "Basic x"}),
    ]
    for tokens, body, code in [
        (plain, b'{"name": "n", "scopes": ["read"]}', 403),
        (delegate, b'{"name": "n", "scopes": ["read"], "owner": "team-b"}', 403),
        (delegate, b'{"name": "n", "scopes": ["write"]}', 403),
        (delegate, b'{"name": "n", "scopes": ["read"]}', 201),
    ]:
        one = await pair.fast.post("/auth/tokens", content=body, headers=_json(tokens[0]))
        two = await pair.routed.post("/auth/tokens", content=body, headers=_json(tokens[1]))
        assert _shape(one) == _shape(two)
        assert one.status_code == code, one.text
        refusals.append((one, two))
    assert [one.status_code for one, _ in refusals[:3]] == [401, 401, 401]
    assert refusals[-1][0].json()["owner"] == "team-a"  # a delegate's token is its owner's
    assert pair.seen == []
    trails = []
    for client in (pair.fast, pair.routed):
        page = await client.get("/auth/audit", params={"action": "refused"}, headers=_bearer(pair))
        trails.append([(r["actor_name"], r["details"]) for r in page.json()["items"]])
    assert trails[0] == trails[1]
    assert [details["attempt"] for _, details in trails[0]] == ["create_token"] * 3
    assert {details["error"] for _, details in trails[0]} == {
        "forbidden",
        "other_owner",
        "scope_not_held",
    }


async def test_both_paths_are_timed_under_the_route_s_label(pair: Pair) -> None:
    await pair.both(b'{"name": "n", "scopes": ["read"]}')
    await pair.both(b'{"name": "n"}')
    await pair.both(b'{"name": "n", "scopes": ["read"]}', auth=None)
    counts = []
    for client in (pair.fast, pair.routed):
        text = (await client.get("/metrics")).text
        line = next(
            line
            for line in text.splitlines()
            if line.startswith("amplify_auth_request_duration_seconds_count")
            and 'route="/auth/tokens"' in line
            and 'method="POST"' in line
        )
        counts.append(float(line.rsplit(" ", 1)[1]))
    assert counts == [3.0, 3.0]


def _bearer(pair: Pair) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair.admin}"}


def _json(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
