"""SQLite's filtered pages: a window of creation order, then the filter's own index.

``TokenStore._windowed_page`` answers a name-prefix or expiry page in two
steps on SQLite; whichever step a page ends in, it must be exactly the page
the plain query gives. Each test compares every page, at every depth, with
the reference computed here from all the rows, for windows small enough
that pages end in each step (and windows that end the table).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from amplify_auth_client import generate_token, hash_token
from amplify_auth_server.database import create_engine, migrate
from amplify_auth_server.models import TokenRecord, utcnow
from amplify_auth_server.pages import TokenFilter
from amplify_auth_server.store import TokenStore

pytestmark = pytest.mark.anyio

NOW = utcnow()


def _record(i: int) -> TokenRecord:
    record = TokenRecord.new(
        token_hash=hash_token(generate_token()),
        # Prefixes of every rarity: "Svc-" all (any case), "svc-1" a tenth,
        # "svc-17" a hundredth, "svc_" (an escaped "_") a few.
        name=("Svc-" if i % 2 else "svc-") + str(i) if i % 37 else f"svc_{i}",
        scopes=("read", f"team:{i % 7}"),
        created_by="test",
        # Creation one second apart, and two at once (the id breaks the tie).
        now=NOW - timedelta(seconds=i // 2),
        expires_at=None if i % 3 else NOW + timedelta(days=(i % 40) - 5),
    )
    return replace(record, revoked_at=NOW if i % 11 == 0 else None)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[TokenStore, list[TokenRecord]]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'pages.db'}")
    await migrate(engine)
    store = TokenStore(engine)
    records = [_record(i) for i in range(400)]
    async with store.transaction() as connection:
        await store.insert_many(connection, records)
    yield store, records
    await engine.dispose()


def _expected(records: list[TokenRecord], filters: TokenFilter, now: datetime) -> list[str]:
    def matches(record: TokenRecord) -> bool:
        status = record.status(now)
        if filters.status != "all" and status != filters.status:
            return False
        if filters.name is not None and not record.name.lower().startswith(filters.name.lower()):
            return False
        if filters.scope is not None and filters.scope not in record.scopes:
            return False
        if filters.expires_within_days is not None:
            horizon = now + timedelta(days=filters.expires_within_days)
            if record.expires_at is None or record.expires_at > horizon:
                return False
        return True

    ordered = sorted(records, key=lambda r: (r.created_at, r.id), reverse=True)
    return [record.id for record in ordered if matches(record)]


FILTERS = [
    TokenFilter(name="svc-"),
    TokenFilter(name="SVC-1"),
    TokenFilter(name="svc-17"),
    TokenFilter(name="svc_"),  # "_" is a character here, not LIKE's wildcard
    TokenFilter(name="nothing"),
    TokenFilter(name="svc-1", status="all", scope="team:3"),
    TokenFilter(expires_within_days=0),
    TokenFilter(expires_within_days=2),
    TokenFilter(expires_within_days=30),
    TokenFilter(expires_within_days=30, status="all"),
    TokenFilter(expires_within_days=10, status="expired"),
    TokenFilter(scope="team:3"),
]


@pytest.mark.parametrize("filters", FILTERS, ids=repr)
async def test_every_page_is_the_plain_querys_page(
    store: tuple[TokenStore, list[TokenRecord]], filters: TokenFilter
) -> None:
    tokens, records = store
    expected = _expected(records, filters, NOW)
    for window, limit in itertools.product((1, 9, 60, 1000), (1, 7, 100)):
        tokens.scan_window = window
        seen: list[str] = []
        after = None
        while True:
            page = await tokens.token_page(filters, after=after, limit=limit, now=NOW)
            assert len(page) <= limit
            seen += [record.id for record in page]
            if len(page) < limit:
                break
            after = (page[-1].created_at, page[-1].id)
        assert seen == expected, (window, limit)


async def test_the_scope_filter_finds_the_element_not_a_substring(
    store: tuple[TokenStore, list[TokenRecord]],
) -> None:
    # "team:3" is text inside no other scope's JSON, quotes included:
    # "team:33" never occurs, and "eam:3" is no scope of any token.
    tokens, records = store
    for scope in ("team:3", "eam:3", "team:", "read"):
        page = await tokens.token_page(
            TokenFilter(scope=scope, status="all"), after=None, limit=1000, now=NOW
        )
        assert [r.id for r in page] == _expected(
            records, TokenFilter(scope=scope, status="all"), NOW
        )
