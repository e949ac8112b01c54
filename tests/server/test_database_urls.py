"""DATABASE_URL as users write it: libpq's sslmode works with asyncpg, and an
unsupported database is refused with the ones that are."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from amplify_auth_server.database import async_url, create_engine
from tests.support.services import fresh_database


@pytest.mark.postgres
def test_a_libpq_sslmode_connects() -> None:
    # Copied from a libpq tool: asyncpg has no sslmode argument and would refuse it.
    async def ask(url: str) -> int:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return int((await connection.execute(text("SELECT 1"))).scalar_one())
        finally:
            await engine.dispose()

    with fresh_database() as url:
        assert asyncio.run(ask(f"{url}?sslmode=disable")) == 1
    assert async_url(f"{url}?sslmode=require&application_name=a").query == {
        "ssl": "require",
        "application_name": "a",
    }


def test_an_unsupported_database_is_refused_with_the_supported_ones() -> None:
    with pytest.raises(
        ValueError, match=r"'mysql'; AMPLIfy Auth supports postgresql:// and sqlite:///"
    ):
        async_url("mysql://u:p@db/auth")
