"""The authorisation matrix: every management endpoint by every kind of caller, on both backends.

One table (:data:`EXPECTED`) says what each caller gets from each endpoint;
one test walks it. Every cell asserts the exact status, and, where the
call was refused, that no token changed. The callers are made once per
module (one server per backend); each cell gets a target token of its
own, of the owner ``payments``, so that a cell that revokes does not
change the next one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import httpx
import pytest

from amplify_auth_client import hash_token
from amplify_auth_server.models import utcnow
from tests.conftest import insert_token
from tests.server.conftest import create
from tests.support.server import Backend, ServerProcess

OWNER: Final = "payments"
OTHER: Final = "search"
MANAGE: Final = "tokens:manage"

#: The kinds of caller, as the issue names them.
CALLERS: Final = (
    "no_token",
    "malformed",
    "ordinary",
    "revoked_delegate",
    "expired_delegate",
    "same_owner",
    "other_owner",
    "without_scope",
    "global_admin",
)


@dataclass(frozen=True)
class World:
    server: ServerProcess
    #: The Authorization header each caller sends (None: none at all).
    headers: dict[str, dict[str, str]]
    ids: dict[str, str]

    def client(self, caller: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.base_url, headers=self.headers[caller], timeout=30.0
        )


@pytest.fixture(scope="module")
def world(server: ServerProcess, backend: Backend) -> World:
    with server.client() as admin:
        same = create(
            admin, name="payments-admin", scopes=[MANAGE, "read", "write"], ttl_days=30,
            owner=OWNER,
        )  # fmt: skip
        other = create(
            admin, name="search-admin", scopes=[MANAGE, "read"], ttl_days=30, owner=OTHER
        )
        ordinary = create(admin, name="plain", scopes=["read"])
        unscoped = create(admin, name="payments-reader", scopes=["read", "write"], owner=OWNER)
        revoked = create(admin, name="payments-gone", scopes=[MANAGE, "read"], owner=OWNER)
        admin.post(f"/auth/tokens/{revoked['token_id']}/revoke").raise_for_status()
    expired, expired_id = insert_token(
        backend,
        name="payments-expired",
        scopes=(MANAGE, "read"),
        expires_at=utcnow() - timedelta(days=1),
        owner=OWNER,
    )
    tokens = {
        "ordinary": ordinary["token"],
        "revoked_delegate": revoked["token"],
        "expired_delegate": expired,
        "same_owner": same["token"],
        "other_owner": other["token"],
        "without_scope": unscoped["token"],
        "global_admin": server.admin_token,
    }
    headers: dict[str, dict[str, str]] = {
        "no_token": {},
        "malformed": {"Authorization": "Bearer not-a-token"},
    }
    headers |= {caller: {"Authorization": f"Bearer {token}"} for caller, token in tokens.items()}
    ids = {
        "same_owner": same["token_id"],
        "other_owner": other["token_id"],
        "ordinary": ordinary["token_id"],
        "without_scope": unscoped["token_id"],
        "revoked_delegate": revoked["token_id"],
        "expired_delegate": expired_id,
    }
    return World(server, headers, ids)


_names = (f"target-{n:04d}" for n in itertools.count())


def _target(admin: httpx.Client) -> dict[str, Any]:
    """A fresh payments token for one cell: expiring in a day, so that it can be extended."""
    return create(admin, name=next(_names), scopes=["read"], ttl_days=1, owner=OWNER)


def _snapshot(admin: httpx.Client) -> dict[str, tuple[str, str | None]]:
    """Every token's status and expiry: what a refused call must leave as it was."""
    snapshot: dict[str, tuple[str, str | None]] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"status": "all", "limit": 1000}
        if cursor is not None:
            params["cursor"] = cursor
        page = admin.get("/auth/tokens", params=params).json()
        for item in page["items"]:
            snapshot[item["token_id"]] = (item["status"], item["expires_at"])
        cursor = page["next_cursor"]
        if cursor is None:
            return snapshot


#: An endpoint's call: a client and the cell's target in, the response out.
Call = Callable[[httpx.Client, dict[str, Any]], httpx.Response]

ENDPOINTS: Final[dict[str, Call]] = {
    "create": lambda c, t: c.post(
        "/auth/tokens", json={"name": "made", "scopes": ["read"], "ttl_days": 7, "owner": OWNER}
    ),
    "list": lambda c, t: c.get("/auth/tokens", params={"owner": OWNER}),
    "info": lambda c, t: c.get(f"/auth/tokens/{t['token_id']}"),
    "token_audit": lambda c, t: c.get(f"/auth/tokens/{t['token_id']}/audit"),
    "revoke": lambda c, t: c.post(f"/auth/tokens/{t['token_id']}/revoke"),
    "extend": lambda c, t: c.post(f"/auth/tokens/{t['token_id']}/extend", json={"days": 1}),
    "rotate": lambda c, t: c.post(
        f"/auth/tokens/{t['token_id']}/rotate", json={"grace_seconds": 3600}
    ),
    "bulk_ids": lambda c, t: c.post("/auth/tokens/revoke", json={"token_ids": [t["token_id"]]}),
    "bulk_filter": lambda c, t: c.post(
        "/auth/tokens/revoke", json={"filter": {"name": t["name"], "owner": OWNER}}
    ),
    "audit": lambda c, t: c.get("/auth/audit"),
    # No admin token needed: a service reports its SDK's cache hits by hash.
    "usage": lambda c, t: c.post(
        "/auth/usage", json={"hits": [{"token_hash": hash_token(t["token"]), "count": 1}]}
    ),
}

#: The route each endpoint of the table calls, as the OpenAPI document names it.
ROUTES: Final = {
    "create": ("post", "/auth/tokens"),
    "list": ("get", "/auth/tokens"),
    "info": ("get", "/auth/tokens/{token_id}"),
    "token_audit": ("get", "/auth/tokens/{token_id}/audit"),
    "revoke": ("post", "/auth/tokens/{token_id}/revoke"),
    "extend": ("post", "/auth/tokens/{token_id}/extend"),
    "rotate": ("post", "/auth/tokens/{token_id}/rotate"),
    "bulk_ids": ("post", "/auth/tokens/revoke"),
    "bulk_filter": ("post", "/auth/tokens/revoke"),
    "audit": ("get", "/auth/audit"),
    "usage": ("post", "/auth/usage"),
}

_UNAUTHENTICATED: Final = {
    "no_token": 401,
    "malformed": 401,
    "revoked_delegate": 401,
    "expired_delegate": 401,
    "ordinary": 403,
    "without_scope": 403,
}


def _row(same: int, other: int, admin: int = 0) -> dict[str, int]:
    return {
        **_UNAUTHENTICATED,
        "same_owner": same,
        "other_owner": other,
        "global_admin": admin or same,
    }


#: The exact status of every cell. A bulk revocation by ids answers 200 for
#: another owner's id, listing it as not found (as an unknown id), and
#: revoking nothing; the whole audit log is 200 to every manager, each
#: seeing its own owner's entries (tested below).
EXPECTED: Final[dict[str, dict[str, int]]] = {
    "create": _row(201, 403),
    "list": _row(200, 403),
    "info": _row(200, 404),
    "token_audit": _row(200, 404),
    "revoke": _row(200, 404),
    "extend": _row(200, 404),
    "rotate": _row(201, 404),
    "bulk_ids": _row(200, 200),
    "bulk_filter": _row(200, 403),
    "audit": _row(200, 200),
    # Whoever sends it (any credentials, or none): the hash is the proof.
    "usage": dict.fromkeys(CALLERS, 204),
}

#: What a successful cell does to its target (nothing, for reads).
CHANGES: Final[dict[str, Callable[[tuple[str, str | None], tuple[str, str | None]], bool]]] = {
    "revoke": lambda before, after: after[0] == "revoked",
    "bulk_ids": lambda before, after: after[0] == "revoked",
    "bulk_filter": lambda before, after: after[0] == "revoked",
    "extend": lambda before, after: after[1] is not None and after[1] > (before[1] or ""),
}


def test_the_table_covers_every_management_route(server: ServerProcess) -> None:
    with server.client(token=None) as anonymous:
        paths = anonymous.get("/openapi.json").json()["paths"]
    operations = {
        (method, path)
        for path, methods in paths.items()
        for method in methods
        if path.startswith("/auth/") and path not in ("/auth/validate", "/auth/events")
    }
    assert operations == set(ROUTES.values())
    assert set(ROUTES) == set(ENDPOINTS) == set(EXPECTED)
    assert all(set(row) == set(CALLERS) for row in EXPECTED.values())


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_authorisation_matrix(world: World, endpoint: str, caller: str) -> None:
    with world.server.client() as admin, world.client(caller) as client:
        target = _target(admin)
        before = _snapshot(admin)
        response = ENDPOINTS[endpoint](client, target)
        after = _snapshot(admin)
    expected = EXPECTED[endpoint][caller]
    assert response.status_code == expected, (endpoint, caller, response.text)
    refused = expected >= 400 or (endpoint == "bulk_ids" and caller == "other_owner")
    if refused:
        assert after == before, "a refused call changed a token"
        if expected == 200:  # a bulk revocation naming another owner's token
            assert response.json()["not_found"] == [target["token_id"]]
        return
    if endpoint == "create":
        (new,) = set(after) - set(before)
        assert response.json()["owner"] == OWNER
        assert {k: v for k, v in after.items() if k != new} == before
        return
    mine = target["token_id"]
    if endpoint == "rotate":
        # A successor of the same owner, and the target's grace: an hour, not a day.
        (new,) = set(after) - set(before)
        assert response.json()["owner"] == OWNER
        assert response.json()["rotated_from"] == mine
        assert after[mine][1] is not None
        assert before[mine][1] is not None
        assert after[mine][0] == "active"
        assert after[mine][1] < before[mine][1]
        assert {k: v for k, v in after.items() if k not in (new, mine)} == {
            k: v for k, v in before.items() if k != mine
        }
        return
    changed = CHANGES.get(endpoint)
    if changed is None:
        assert after == before
    else:
        assert changed(before[mine], after[mine]), (before[mine], after[mine])
        assert {k: v for k, v in after.items() if k != mine} == {
            k: v for k, v in before.items() if k != mine
        }


# -- the refusals, in detail -----------------------------------------------------

_ID_ROUTES: Final = ("info", "token_audit", "revoke", "extend", "rotate")


@pytest.mark.parametrize("endpoint", _ID_ROUTES)
def test_a_foreign_token_is_answered_exactly_as_an_unknown_id(world: World, endpoint: str) -> None:
    unknown = {"token_id": "tok_0000000000000000", "name": "none"}
    with world.server.client() as admin, world.client("other_owner") as client:
        foreign = ENDPOINTS[endpoint](client, _target(admin))
        missing = ENDPOINTS[endpoint](client, unknown)
    assert foreign.status_code == missing.status_code == 404
    ignore = {"date", "content-length"}
    assert {k: v for k, v in foreign.headers.items() if k not in ignore} == {
        k: v for k, v in missing.headers.items() if k not in ignore
    }
    # The same words, but for the id each asked about.
    assert foreign.json()["error"] == missing.json()["error"] == "not_found"
    assert foreign.text.replace(
        foreign.request.url.path.split("/")[3], "ID"
    ) == missing.text.replace(unknown["token_id"], "ID")


def test_refusals_are_audited_without_the_targets_details(world: World) -> None:
    with world.server.client() as admin, world.client("other_owner") as client:
        target = _target(admin)
        assert client.post(f"/auth/tokens/{target['token_id']}/revoke").status_code == 404
        assert client.post("/auth/tokens/tok_0000000000000001/revoke").status_code == 404
        trail = admin.get("/auth/audit", params={"action": "refused"}).json()["items"]
        own = client.get("/auth/audit", params={"action": "refused"}).json()["items"]
    mine = [e for e in trail if e["actor_id"] == world.ids["other_owner"]]
    by_target = {e["token_id"]: e for e in mine}
    foreign, unknown = by_target[target["token_id"]], by_target["tok_0000000000000001"]
    # An unknown id and another owner's token leave the same entry.
    assert (
        foreign["details"]
        == unknown["details"]
        == {
            "attempt": "revoke_token",
            "status": 404,
            "error": "not_found",
        }
    )
    assert target["name"] not in str(foreign)
    # The refused owner sees its own refusals in its audit log.
    assert {e["id"] for e in own} >= {foreign["id"], unknown["id"]}


def test_a_token_without_the_scope_is_audited_as_refused(world: World) -> None:
    with world.server.client() as admin, world.client("without_scope") as client:
        target = _target(admin)
        assert client.get(f"/auth/tokens/{target['token_id']}").status_code == 403
        trail = admin.get("/auth/audit", params={"actor": world.ids["without_scope"]}).json()
    (entry, *_) = trail["items"]
    assert entry["action"] == "refused"
    assert entry["token_id"] == target["token_id"]
    assert entry["details"] == {"attempt": "get_token", "status": 403, "error": "forbidden"}


def test_the_delegated_audit_log_holds_its_owners_entries_only(world: World) -> None:
    with world.server.client() as admin, world.client("same_owner") as client:
        _target(admin)
        seen = client.get("/auth/audit", params={"limit": 1000}).json()["items"]
        everything = admin.get("/auth/audit", params={"limit": 1000}).json()["items"]
        owners = {
            item["token_id"]: item["owner"]
            for item in admin.get("/auth/tokens", params={"status": "all", "limit": 1000}).json()[
                "items"
            ]
        }
    assert seen
    assert len(seen) < len(everything)
    for entry in seen:
        if entry["action"] == "refused":  # the refusals of its owner's own tokens
            assert owners[entry["actor_id"]] == OWNER
        else:
            assert owners[entry["token_id"]] == OWNER


def test_a_revoked_delegate_stops_managing_at_once(server: ServerProcess) -> None:
    with server.client() as admin:
        made = create(admin, name="short-lived", scopes=[MANAGE, "read"], owner=OWNER)
        with server.client(token=made["token"]) as delegate:
            # Used once, so that every cache holds it as valid.
            assert delegate.get("/auth/tokens").status_code == 200
            admin.post(f"/auth/tokens/{made['token_id']}/revoke").raise_for_status()
            assert delegate.get("/auth/tokens").status_code == 401


def test_tokens_manage_without_an_owner_is_refused(server: ServerProcess) -> None:
    with server.client() as admin:
        before = _snapshot(admin)
        response = admin.post("/auth/tokens", json={"name": "nobody", "scopes": [MANAGE]})
        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"] == ["body", "owner"]
        assert "owner" in response.json()["detail"]
        assert _snapshot(admin) == before


def test_a_global_admin_creates_for_any_owner(server: ServerProcess) -> None:
    with server.client() as admin:
        made = create(admin, name="for-search", scopes=["read"], owner=OTHER)
        assert made["owner"] == OTHER
        assert admin.get(f"/auth/tokens/{made['token_id']}").json()["owner"] == OTHER


def test_a_delegate_creates_for_its_own_owner_when_none_is_given(world: World) -> None:
    with world.client("same_owner") as client:
        made = client.post(
            "/auth/tokens", json={"name": "implicit", "scopes": ["read"], "ttl_days": 3}
        )
        assert made.status_code == 201, made.text
        assert made.json()["owner"] == OWNER
        answer = client.post("/auth/validate", json={"token": made.json()["token"]}).json()
    assert answer["owner"] == OWNER


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"scopes": ["read"], "ttl_days": 7, "owner": OTHER}, "other_owner"),
        ({"scopes": ["admin"], "ttl_days": 7}, "scope_not_held"),
        ({"scopes": ["read", "deploy"], "ttl_days": 7}, "scope_not_held"),
        ({"scopes": ["read"]}, "expires_after_manager"),
        ({"scopes": ["read"], "ttl_days": 31}, "expires_after_manager"),
    ],
)
def test_a_delegate_cannot_create_beyond_its_delegation(
    world: World, body: dict[str, Any], code: str
) -> None:
    with world.server.client() as admin, world.client("same_owner") as client:
        before = _snapshot(admin)
        response = client.post("/auth/tokens", json={"name": "beyond", **body})
        assert response.status_code == 403
        assert response.json()["error"] == code
        assert _snapshot(admin) == before


def test_a_delegate_cannot_extend_past_its_own_expiry(world: World) -> None:
    with world.server.client() as admin, world.client("same_owner") as client:
        target = _target(admin)
        before = _snapshot(admin)
        response = client.post(f"/auth/tokens/{target['token_id']}/extend", json={"days": 60})
        assert response.status_code == 403
        assert response.json()["error"] == "expires_after_manager"
        # Nor itself: it would never expire.
        itself = client.post(f"/auth/tokens/{world.ids['same_owner']}/extend", json={"days": 1})
        assert itself.status_code == 403
        assert _snapshot(admin) == before


def test_a_foreign_id_in_a_bulk_revocation_is_audited_as_not_found(world: World) -> None:
    with world.server.client() as admin, world.client("other_owner") as client:
        target = _target(admin)
        answer = client.post("/auth/tokens/revoke", json={"token_ids": [target["token_id"]]})
        assert answer.json()["not_found"] == [target["token_id"]]
        trail = admin.get("/auth/tokens/" + target["token_id"] + "/audit").json()["items"]
    (refusal,) = [e for e in trail if e["action"] == "refused"]
    assert refusal["actor_id"] == world.ids["other_owner"]
    assert refusal["details"] == {"attempt": "revoke_tokens", "status": 404, "error": "not_found"}
