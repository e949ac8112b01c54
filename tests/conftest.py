"""Fixtures shared by every test package: backends, servers, a clean environment."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from amplify_auth_client import generate_token, hash_token
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.services import PrivateRedis, fresh_database, private_redis, redis_namespace

# Variables the SDK and the server read; no test may inherit a developer's.
_ENVIRONMENT = (
    "AUTH_SERVICE_URL",
    "AUTH_ADMIN_TOKEN",
    "AUTH_URL",
    "DATABASE_URL",
    "REDIS_URL",
    "NO_COLOR",
    # pytest-xdist's workers set these; the CLI's output width must not depend on them.
    "COLUMNS",
    "LINES",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


BACKENDS = [
    pytest.param("embedded", id="sqlite"),
    pytest.param("postgres", id="postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """Each backend in turn: SQLite + in-process cache, then PostgreSQL + Redis."""
    directory = tmp_path_factory.mktemp(request.param)
    if request.param == "embedded":
        yield Backend("embedded", directory)
        return
    with fresh_database() as url, redis_namespace() as namespace:
        yield Backend("postgres", directory, url, namespace)


@pytest.fixture(scope="module")
def own_redis() -> Iterator[PrivateRedis]:
    """A redis-server of the module's own, which its tests may stop and start again."""
    with private_redis() as instance:
        yield instance


@pytest.fixture
def replicas(
    tmp_path: Path, own_redis: PrivateRedis
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two server processes on one fresh PostgreSQL database and ``own_redis``."""
    with fresh_database() as url:
        backend = Backend("postgres", tmp_path, url)
        env = {"REDIS_URL": own_redis.url}
        admin_token = generate_token()
        with (
            running_server(backend, env=env, admin_token=admin_token) as one,
            running_server(backend, env=env, admin_token=admin_token) as two,
        ):
            yield one, two


@pytest.fixture(scope="module")
def server(backend: Backend) -> Iterator[ServerProcess]:
    with running_server(backend) as process:
        yield process


def insert_token(
    backend: Backend,
    *,
    name: str = "inserted",
    scopes: tuple[str, ...] = ("read",),
    expires_at: datetime | None = None,
    raw: str | None = None,
    owner: str | None = None,
) -> tuple[str, str]:
    """Write a token straight into the backend's database (e.g. one already expired).

    Returns ``(raw_token, token_id)``.
    """
    from amplify_auth_server.database import create_engine
    from amplify_auth_server.models import TokenRecord, utcnow
    from amplify_auth_server.store import TokenStore

    raw = raw or generate_token()
    record = TokenRecord.new(
        token_hash=hash_token(raw),
        name=name,
        scopes=scopes,
        created_by="test",
        now=utcnow(),
        expires_at=expires_at,
        owner=owner,
    )

    async def insert() -> None:
        engine = create_engine(backend.store_url)
        try:
            store = TokenStore(engine)
            async with store.transaction() as connection:
                await store.insert(connection, record)
        finally:
            await engine.dispose()

    asyncio.run(insert())
    return raw, record.id


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
