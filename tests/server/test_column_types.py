"""What the writer binds for a datetime and a JSON column: on SQLite the very text
SQLAlchemy's own processors wrote (every stored row and every query compares it), and
JSON that reads back as it went in; naive datetimes refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.sqlite.base import DATETIME

from amplify_auth_server.database import create_engine, migrate
from amplify_auth_server.models import TokenRecord
from amplify_auth_server.store import TokenStore
from amplify_auth_server.tables import UTCDateTime, tokens

SQLITE = sqlite.dialect()
_OURS = UTCDateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
_SQLALCHEMYS = DATETIME().bind_processor(SQLITE)

AWARE = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.builds(
        timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
    ),
)


@given(AWARE)
def test_a_datetime_is_bound_as_sqlalchemy_would_bind_it_in_utc(value: datetime) -> None:
    assert _OURS is not None
    assert _SQLALCHEMYS is not None
    assert _OURS(value) == _SQLALCHEMYS(value.astimezone(UTC))


def test_a_naive_datetime_is_refused_and_none_is_null() -> None:
    assert _OURS is not None
    with pytest.raises(ValueError, match="naive"):
        _OURS(datetime(2026, 12, 1, 9, 30))
    assert _OURS(None) is None


def test_other_databases_keep_sqlalchemys_processor() -> None:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    processor = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    moment = datetime(2026, 12, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    bound = moment if processor is None else processor(moment)
    assert bound == moment
    assert bound.tzinfo is UTC


@pytest.mark.anyio
async def test_a_record_reads_back_as_written(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'types.db'}")
    try:
        await migrate(engine)
        store = TokenStore(engine)
        record = TokenRecord.new(
            token_hash="ab" * 32,
            name="types",
            scopes=("read", "write:x"),
            created_by="test",
            now=datetime(2026, 12, 1, 9, 30, 0, 1, tzinfo=UTC),
            expires_at=datetime(2027, 1, 1, tzinfo=timezone(timedelta(hours=-5))),
            metadata={"team": "payments", "note": 'quotes " and \\ and é'},
        )
        async with store.transaction() as connection:
            await store.insert(connection, record)
        async with engine.connect() as connection:
            row: Any = (await connection.execute(select(tokens))).one()
            text = (
                await connection.exec_driver_sql("SELECT created_at, expires_at FROM tokens")
            ).one()
        assert TokenRecord.from_row(row) == record
        # SQLite's text, in UTC: what the listing's and expiry's comparisons read.
        assert tuple(text) == ("2026-12-01 09:30:00.000001", "2027-01-01 05:00:00.000000")
    finally:
        await engine.dispose()
