"""Owners: the subset rule as a property, and two owners interleaved in every listing.

The property test runs against a real server, as the property test of
create does (tests/server/test_strict_input.py): random scopes a
delegated creator holds, random scopes it asks for, with its own owner
or another; 201 only when what it asks is a subset of what it holds and
the owner is its own, and then the stored scopes are exactly those asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.conftest import create
from tests.support.server import Backend, ServerProcess, running_server

MANAGE: Final = "tokens:manage"
ALICE: Final = "team-a"
BOB: Final = "team-b"

_SCOPES = st.sampled_from(["read", "write", "orders:read", "orders:write", "deploy", "admin"])


@pytest.fixture(scope="module")
def property_server(backend: Backend) -> Iterator[ServerProcess]:
    with running_server(backend) as process:
        yield process


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    held=st.sets(_SCOPES.filter(lambda s: s != "admin"), max_size=4),
    asked=st.lists(st.one_of(_SCOPES, st.just(MANAGE)), min_size=1, max_size=4, unique=True),
    owner=st.sampled_from([None, ALICE, BOB]),
)
def test_a_delegate_grants_exactly_a_subset_of_what_it_holds_for_its_own_owner(
    property_server: ServerProcess, held: set[str], asked: list[str], owner: str | None
) -> None:
    with property_server.client() as admin:
        creator = create(
            admin, name="creator", scopes=[MANAGE, *sorted(held)], ttl_days=30, owner=ALICE
        )
        body: dict[str, Any] = {"name": "made", "scopes": asked, "ttl_days": 7}
        if owner is not None:
            body["owner"] = owner
        with property_server.client(token=creator["token"]) as delegate:
            response = delegate.post("/auth/tokens", json=body)
        allowed = set(asked) <= {MANAGE, *held} and owner in (None, ALICE)
        if not allowed:
            assert response.status_code == 403, (held, asked, owner, response.text)
            return
        assert response.status_code == 201, (held, asked, owner, response.text)
        stored = admin.get(f"/auth/tokens/{response.json()['token_id']}").json()
    assert stored["scopes"] == asked
    assert stored["owner"] == ALICE


# -- two owners, interleaved --------------------------------------------------------


class Owners:
    """Two delegated admins, and each one's tokens, created alternately.

    The owners are ``team-a-<tag>`` and ``team-b-<tag>``, so that each
    instance's tokens are its own in a database other tests share.
    """

    def __init__(self, server: ServerProcess, tag: str) -> None:
        self.server = server
        self.alice, self.bob = f"{ALICE}-{tag}", f"{BOB}-{tag}"
        self.tokens: dict[str, set[str]] = {self.alice: set(), self.bob: set()}
        self.raw: dict[str, str] = {}
        with server.client() as admin:
            for owner in (self.alice, self.bob):
                made = create(
                    admin, name=f"{owner}-admin", scopes=[MANAGE, "read", "write"], ttl_days=30,
                    owner=owner,
                )  # fmt: skip
                self.raw[owner] = made["token"]
                self.tokens[owner].add(made["token_id"])
            # Same names, same scopes, same expiries: only the owner tells them apart.
            for n in range(7):
                for owner in (self.alice, self.bob):
                    made = create(
                        admin, name=f"svc-{n}", scopes=["read"] if n % 2 else ["write"],
                        ttl_days=3 if n < 4 else 20, owner=owner,
                    )  # fmt: skip
                    self.tokens[owner].add(made["token_id"])

    def client(self, owner: str) -> httpx.Client:
        return self.server.client(token=self.raw[owner])

    def other(self, owner: str) -> str:
        return self.bob if owner == self.alice else self.alice

    def owner(self, which: str) -> str:
        return self.alice if which == ALICE else self.bob


@pytest.fixture(scope="module")
def owners(server: ServerProcess) -> Owners:
    return Owners(server, "listed")


def _pages(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 2} | ({} if cursor is None else {"cursor": cursor})
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


LISTINGS: Final = [
    {},
    {"status": "all"},
    {"name": "svc-"},
    {"scope": "read"},
    {"expires_within_days": 5},
    {"status": "all", "scope": "write", "name": "SVC"},
]


@pytest.mark.parametrize("which", [ALICE, BOB])
@pytest.mark.parametrize("filters", LISTINGS, ids=lambda f: ",".join(f) or "none")
def test_every_page_of_every_listing_holds_only_its_owners_tokens(
    owners: Owners, which: str, filters: dict[str, Any]
) -> None:
    owner = owners.owner(which)
    with owners.client(owner) as client:
        items = _pages(client, "/auth/tokens", **filters)
        named = _pages(client, "/auth/tokens", owner=owner, **filters)
    assert items
    assert {item["token_id"] for item in items} <= owners.tokens[owner]
    assert all(item["owner"] == owner for item in items)
    assert named == items


@pytest.mark.parametrize("which", [ALICE, BOB])
def test_the_audit_pages_of_an_owner_never_name_the_others_tokens(
    owners: Owners, which: str
) -> None:
    owner = owners.owner(which)
    with owners.client(owner) as client:
        entries = _pages(client, "/auth/audit")
    assert entries
    assert not {entry["token_id"] for entry in entries} & owners.tokens[owners.other(owner)]


def test_bulk_revocation_by_filter_reaches_only_the_callers_owner(server: ServerProcess) -> None:
    fresh = Owners(server, "filter")  # of its own: this one revokes
    with fresh.client(fresh.alice) as alice, server.client() as admin:
        counted = alice.post(
            "/auth/tokens/revoke", json={"filter": {"name": "svc-"}, "dry_run": True}
        ).json()["revoked_count"]
        done = alice.post("/auth/tokens/revoke", json={"filter": {"name": "svc-"}})
        assert done.status_code == 200
        assert done.json()["revoked_count"] == counted == 7
        assert (
            alice.post(
                "/auth/tokens/revoke", json={"filter": {"name": "svc-", "owner": fresh.bob}}
            ).status_code
            == 403
        )
        statuses = {
            item["token_id"]: item["status"]
            for item in admin.get("/auth/tokens", params={"status": "all", "limit": 1000}).json()[
                "items"
            ]
        }
    for token_id in fresh.tokens[fresh.bob]:
        assert statuses[token_id] == "active"
    assert sum(statuses[t] == "revoked" for t in fresh.tokens[fresh.alice]) == 7


def test_bulk_revocation_by_ids_reaches_only_the_callers_owner(server: ServerProcess) -> None:
    fresh = Owners(server, "ids")
    alice = sorted(fresh.tokens[fresh.alice] - {_own(fresh, fresh.alice)})[:3]
    mixed = alice + sorted(fresh.tokens[fresh.bob] - {_own(fresh, fresh.bob)})[:3]
    with fresh.client(fresh.bob) as bob, server.client() as admin:
        answer = bob.post("/auth/tokens/revoke", json={"token_ids": mixed}).json()
        alice_left = [
            admin.get(f"/auth/tokens/{token_id}").json()["status"] for token_id in mixed[:3]
        ]
    assert answer["not_found"] == mixed[:3]
    assert set(answer["revoked"]) | set(answer["already_revoked"]) == set(mixed[3:])
    assert alice_left == ["active"] * 3


def _own(owners: Owners, owner: str) -> str:
    """The delegated admin's own token id."""
    with owners.client(owner) as client:
        answer = client.post("/auth/validate", json={"token": owners.raw[owner]}).json()
    token_id: str = answer["token_id"]
    return token_id
