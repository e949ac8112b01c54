"""Failed admin authentications are logged and audited, one row per client, token,
route and status per window with a count, never with a secret; a flood from many
clients is bounded.

Windows here are an hour long and end at shut-down (which writes them), or a
second long where a test waits for a window to end by itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from amplify_auth_client import generate_token
from amplify_auth_server.denials import MAX_KEYS
from tests.server.conftest import create
from tests.server.test_throttle import address, client_from
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.waiting import wait_for

ACTION = "admin_auth_failed"
HOUR = {"AUDIT_FAILURE_WINDOW": "3600"}


def denials(server: ServerProcess, **query: str) -> list[dict[str, Any]]:
    """Every ``admin_auth_failed`` row, following the pages."""
    rows: list[dict[str, Any]] = []
    params: dict[str, str] = {"action": ACTION, "limit": "200", **query}
    with server.client() as admin:
        while True:
            page = admin.get("/auth/audit", params=params)
            page.raise_for_status()
            rows += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return rows
            params["cursor"] = cursor


def restart(server: ServerProcess) -> None:
    """Stop (which writes the window's rows) and start again."""
    server.stop()
    server.start()


def of(rows: list[dict[str, Any]], client: str) -> list[dict[str, Any]]:
    return [row for row in rows if row["details"]["client"] == client]


def test_failures_are_audited_per_client_token_and_route_with_no_secret(
    backend: Backend,
) -> None:
    with running_server(backend, env=HOUR) as server:
        with server.client() as admin:
            reader = create(admin, name="reader", scopes=["read"])
        guessed = generate_token()
        source = address()
        with client_from(server, source, guessed) as guesser:
            for _ in range(5):
                assert guesser.get("/auth/tokens").status_code == 401
            # A raw token pasted into the path: the route template is audited, not the URL.
            assert guesser.get(f"/auth/tokens/{reader['token']}").status_code == 401
        with client_from(server, source, reader["token"]) as not_admin:
            for _ in range(2):
                response = not_admin.post(f"/auth/tokens/{reader['token_id']}/revoke")
                assert response.status_code == 403
        with client_from(server, source) as nobody:
            assert nobody.get("/auth/audit").status_code == 401
        restart(server)

        rows = of(denials(server), source)
        summary = sorted(
            (
                r["actor_id"],
                r["token_id"],
                r["details"]["method"],
                r["details"]["route"],
                r["details"]["status"],
                r["details"]["count"],
            )
            for r in rows
        )
        assert summary == sorted(
            [
                ("anonymous", None, "GET", "/auth/tokens", 401, 5),
                ("anonymous", None, "GET", "/auth/tokens/{token_id}", 401, 1),
                ("anonymous", None, "GET", "/auth/audit", 401, 1),
                (
                    reader["token_id"],
                    reader["token_id"],
                    "POST",
                    "/auth/tokens/{token_id}/revoke",
                    403,
                    2,
                ),
            ]
        )
        mine = next(r for r in rows if r["actor_id"] == reader["token_id"])
        assert mine["actor_name"] == "reader"
        assert mine["details"]["first_at"] <= mine["details"]["last_at"]
        # Filterable as every other entry: by action, by actor, in the token's own trail.
        anonymous = of(denials(server, actor="anonymous"), source)
        assert sum(r["details"]["count"] for r in anonymous) == 7
        with server.client() as admin:
            trail = admin.get(
                f"/auth/tokens/{reader['token_id']}/audit", params={"action": ACTION}
            ).json()["items"]
        assert [r["details"]["count"] for r in trail] == [2]

        log = server.log()
        assert "admin authentication failed: 401 on GET /auth/tokens from " + source in log
        assert "admin authentication failed: 403 on POST /auth/tokens/{token_id}/revoke" in log
        for secret in (guessed, reader["token"]):
            assert secret not in log
            assert secret[9:] not in log
            assert secret not in str(rows)


def test_a_throttled_failure_is_audited_as_429(tmp_path: Path) -> None:
    env = {**HOUR, "THROTTLE_ADMIN_FAILURES": "2/hour"}
    with running_server(Backend("embedded", tmp_path), env=env) as server:
        source = address()
        with client_from(server, source, generate_token()) as guesser:
            statuses = [guesser.get("/auth/tokens").status_code for _ in range(5)]
        assert statuses == [401, 401, 429, 429, 429]
        restart(server)
        rows = of(denials(server), source)
        counts = {r["details"]["status"]: r["details"]["count"] for r in rows}
        assert counts == {401: 2, 429: 3}


def test_a_window_writes_its_rows_when_it_ends(tmp_path: Path) -> None:
    with running_server(Backend("embedded", tmp_path), env={"AUDIT_FAILURE_WINDOW": "1"}) as server:
        source = address()
        with client_from(server, source) as nobody:
            assert nobody.get("/auth/tokens").status_code == 401
        # The window ends by itself: its row appears without a restart.
        wait_for(lambda: of(denials(server), source))
        (row,) = of(denials(server), source)
        assert row["details"]["count"] == 1


def test_a_flood_from_many_clients_writes_a_bounded_number_of_rows(tmp_path: Path) -> None:
    # Behind a trusted proxy, each forwarded address is a client of its own.
    proxy = address()
    env = {**HOUR, "TRUSTED_PROXIES": proxy}
    clients = MAX_KEYS + 44
    with running_server(Backend("embedded", tmp_path), env=env) as server:
        with httpx.Client(
            base_url=server.base_url, transport=httpx.HTTPTransport(local_address=proxy)
        ) as via_proxy:
            for n in range(clients):
                forwarded = {"X-Forwarded-For": f"10.{n // 250}.{n % 250}.1"}
                assert via_proxy.get("/auth/tokens", headers=forwarded).status_code == 401
        restart(server)
        rows = denials(server)
        assert len(rows) == MAX_KEYS + 1
        (overflow,) = [r for r in rows if r["details"].get("overflow")]
        assert overflow["details"]["count"] == 44
        assert overflow["details"]["client"] == "*"
        assert sum(r["details"]["count"] for r in rows) == clients
        assert f"from more than {MAX_KEYS} clients" in server.log()
