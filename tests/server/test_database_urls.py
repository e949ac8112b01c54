"""DATABASE_URL as users write it: libpq's parameters work with asyncpg, what
PostgreSQL refuses of them is one line, and an unsupported database is refused
with the ones that are."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from amplify_auth_server.database import _asyncpg_arguments, async_url, create_engine
from tests.support.server import run_cli
from tests.support.services import fresh_database


def migrate_with(url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("migrate", cwd=cwd, env={"DATABASE_URL": url})


@pytest.mark.postgres
def test_libpq_parameters_reach_postgresql() -> None:
    # Copied from a libpq tool: asyncpg takes none of these as arguments, and
    # SQLAlchemy would pass them as such (a TypeError).
    async def ask(url: str) -> str:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                setting = text("SELECT current_setting('application_name')")
                return str((await connection.execute(setting)).scalar_one())
        finally:
            await engine.dispose()

    with fresh_database() as url:
        libpq = f"{url}?sslmode=disable&application_name=amplify-probe&connect_timeout=3"
        assert asyncio.run(ask(libpq)) == "amplify-probe"
    _, arguments = _asyncpg_arguments(async_url(libpq))
    assert arguments["timeout"] == 3.0  # asyncpg's name for it


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("query", "said"),
    [
        pytest.param(
            "sslmode=verify-full&sslrootcert=/nonexistent/root.crt",
            "No such file or directory",
            id="missing-root-certificate",
        ),
        pytest.param(
            "not_a_setting=1",
            'unrecognized configuration parameter "not_a_setting"',
            id="unknown-parameter",
        ),
    ],
)
def test_a_libpq_parameter_postgresql_refuses_is_one_line(
    tmp_path: Path, query: str, said: str
) -> None:
    with fresh_database() as url:
        result = migrate_with(f"{url}?{query}", tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = [e for e in result.stderr.splitlines() if e.startswith("amplify-auth-server:")]
    assert said in line


@pytest.mark.parametrize("value", ["soon", "nan", "inf"])
def test_a_connect_timeout_that_is_no_number_is_a_bad_setting(tmp_path: Path, value: str) -> None:
    result = migrate_with(f"postgresql://u@127.0.0.1:5432/auth?connect_timeout={value}", tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("amplify-auth-server: DATABASE_URL: ")
    assert f"connect_timeout is '{value}': a number of seconds" in line


def test_sqlalchemys_spellings_and_several_hosts_reach_asyncpg_as_libpqs() -> None:
    url, arguments = _asyncpg_arguments(
        async_url(
            "postgresql://u@/auth?host=h1:5432&host=h2:5433&target_session_attrs=read-write"
            "&ssl=require&prepared_statement_cache_size=0&connect_timeout=0"
        )
    )
    # Both hosts, as libpq's list (a repeated key would keep the last only).
    assert arguments["dsn"] == (
        "postgresql://?host=h1%3A5432%2Ch2%3A5433&target_session_attrs=read-write&sslmode=require"
    )
    assert arguments["timeout"] is None  # libpq's 0: wait as long as it takes
    # The dialect's own option (PgBouncer's transaction mode) stays its own.
    assert url.query == {"prepared_statement_cache_size": "0"}


def test_a_database_that_never_answers_is_one_line_without_the_query_password(
    tmp_path: Path,
) -> None:
    # Accepts connections, never says a word: asyncpg's timeout is all there is.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        result = migrate_with(
            f"postgresql://u@127.0.0.1:{port}/auth?connect_timeout=0.5&password=hunter2",
            tmp_path,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = [e for e in result.stderr.splitlines() if e.startswith("amplify-auth-server:")]
    assert "TimeoutError" in line
    assert "hunter2" not in result.stderr


def test_an_unsupported_database_is_refused_with_the_supported_ones() -> None:
    with pytest.raises(
        ValueError, match=r"'mysql'; AMPLIfy Auth supports postgresql:// and sqlite:///"
    ):
        async_url("mysql://u:p@db/auth")
