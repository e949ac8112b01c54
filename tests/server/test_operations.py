"""Running the server: health, metrics, docs, migrations, admin bootstrap, logs."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import pytest
from alembic import command as alembic
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from amplify_auth_client import __version__, generate_token, hash_token, token_is_well_formed
from amplify_auth_server import database
from amplify_auth_server.database import create_engine
from amplify_auth_server.tables import include_object, metadata
from tests.server.conftest import create, validate
from tests.support.server import (
    Backend,
    ServerProcess,
    clean_environment,
    run_cli,
    running_server,
)
from tests.support.services import fresh_database
from tests.support.tokens import with_a_bad_checksum


def test_health_has_the_seed_shape(backend: Backend, server: ServerProcess) -> None:
    response = httpx.get(server.base_url + "/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "healthy",
        "version": __version__,
        "components": {
            "database": "healthy",
            "redis": "disabled" if backend.redis is None else "healthy",
            "command_processor": "running",
        },
    }


def test_metrics_count_validations_cache_queue_and_latency(
    server: ServerProcess, admin: httpx.Client
) -> None:
    token = create(admin)["token"]
    validate(admin, token)
    validate(admin, token, "nope")
    validate(admin, "garbage")
    response = httpx.get(server.base_url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for result in ("valid", "insufficient_scope", "malformed"):
        assert re.search(rf'^amplify_auth_validations_total{{result="{result}"}} [1-9]', text, re.M)
    assert re.search(
        r'^amplify_auth_cache_requests_total{outcome="hit",tier="local"} [1-9]', text, re.M
    )
    assert re.search(r"^amplify_auth_command_queue_depth 0\.0$", text, re.M)
    assert re.search(
        r'^amplify_auth_request_duration_seconds_count{method="POST",route="/auth/validate"} [1-9]',
        text,
        re.M,
    )
    assert token not in text


def _propagations(server: ServerProcess) -> float:
    text = httpx.get(server.base_url + "/metrics").text
    found = re.search(r"^amplify_auth_change_propagation_seconds_count (\S+)$", text, re.M)
    assert found, "the revocation lag is not in /metrics"
    return float(found.group(1))


def test_each_change_times_its_way_to_every_cache(
    server: ServerProcess, admin: httpx.Client
) -> None:
    token = create(admin)
    before = _propagations(server)
    assert admin.post(f"/auth/tokens/{token['token_id']}/revoke").status_code == 200
    assert _propagations(server) == before + 1
    # A validation changes nothing: nothing to time.
    validate(admin, token["token"])
    assert _propagations(server) == before + 1


def test_openapi_describes_every_route_with_models(server: ServerProcess) -> None:
    assert httpx.get(server.base_url + "/docs").status_code == 200
    spec = httpx.get(server.base_url + "/openapi.json").json()
    paths = spec["paths"]
    assert set(paths) >= {
        "/auth/validate",
        "/auth/tokens",
        "/auth/tokens/{token_id}",
        "/auth/tokens/{token_id}/revoke",
        "/auth/tokens/{token_id}/extend",
        "/auth/tokens/{token_id}/audit",
        "/auth/audit",
        "/health",
        "/metrics",
    }
    validate_op = paths["/auth/validate"]["post"]
    body = validate_op["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"token", "required_scopes"}
    assert validate_op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ValidateResponse"
    }
    create_op = paths["/auth/tokens"]["post"]
    assert "201" in create_op["responses"]
    assert {"401", "403", "422"} <= set(create_op["responses"])


def _schema_diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"include_object": include_object})
    with warnings.catch_warnings():
        # SQLAlchemy cannot reflect SQLite's index on lower(name) (migration
        # 0009), which include_object leaves out of the comparison anyway.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        return list(compare_metadata(context, metadata))


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_migrate_builds_exactly_the_models_schema_and_is_idempotent(
    tmp_path: Path, kind: str
) -> None:
    def check(url: str) -> None:
        env = {"DATABASE_URL": url}
        first = run_cli("migrate", cwd=tmp_path, env=env)
        assert first.returncode == 0, first.stderr
        assert "Running upgrade" in first.stderr
        assert "setup plugin" not in first.stderr  # Alembic's chatter about itself
        again = run_cli("migrate", cwd=tmp_path, env=env)
        assert again.returncode == 0, again.stderr
        assert "Running upgrade" not in again.stderr

        async def diff() -> list[object]:
            engine = create_engine(url)
            try:
                async with engine.connect() as connection:
                    return await connection.run_sync(_schema_diff)
            finally:
                await engine.dispose()

        assert asyncio.run(diff()) == []

        async def dialect_indexes() -> set[str]:
            engine = create_engine(url)
            try:
                async with engine.connect() as connection:
                    rows = await connection.exec_driver_sql(
                        "SELECT name FROM sqlite_master WHERE type = 'index'"
                        if kind == "sqlite"
                        else "SELECT indexname FROM pg_indexes WHERE tablename = 'tokens'"
                    )
                    return {row[0] for row in rows}
            finally:
                await engine.dispose()

        # The indexes the comparison leaves out are there all the same.
        expected = {"ix_tokens_lower_name"} | (
            {"ix_tokens_scopes"} if kind == "postgres" else set()
        )
        assert expected <= asyncio.run(dialect_indexes())

    if kind == "sqlite":
        check(f"sqlite:///{tmp_path / 'migrated.db'}")
    else:
        with fresh_database() as url:
            check(url)


_MIGRATIONS = Path(database.__file__).with_name("migrations")


def test_head_revision_is_the_newest_migration() -> None:
    assert ScriptDirectory(str(_MIGRATIONS)).get_heads() == [database.HEAD_REVISION]


#: What a process that imported the server and migrated holds of Alembic and its
#: template engine, one name per line.
_MIGRATE_AND_LIST = """
import asyncio, sys
from amplify_auth_server.database import create_engine, migrate
async def main():
    engine = create_engine(sys.argv[1])
    await migrate(engine)
    await engine.dispose()
asyncio.run(main())
print("\\n".join(sorted({m.split(".")[0] for m in sys.modules} & {"alembic", "mako", "pygments"})))
"""


def _migrate_in_a_process(url: str, cwd: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _MIGRATE_AND_LIST, url],
        cwd=cwd,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split()


def _stamp(url: str, revision: str) -> None:
    async def stamp() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text("UPDATE alembic_version SET version_num = :v"), {"v": revision}
                )
        finally:
            await engine.dispose()

    asyncio.run(stamp())


def _upgrade_to(url: str, revision: str) -> None:
    def upgrade(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        config.attributes["connection"] = connection
        alembic.upgrade(config, revision)

    async def run() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(upgrade)
        finally:
            await engine.dispose()

    asyncio.run(run())


def _revisions(url: str) -> list[str]:
    async def read() -> list[str]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
                return list(rows.scalars())
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_database_at_head_is_left_alone_without_alembic(tmp_path: Path, kind: str) -> None:
    def check(url: str) -> None:
        # One revision behind (the build before): Alembic upgrades it.
        _upgrade_to(url, "0008")
        assert _revisions(url) == ["0008"]
        assert "alembic" in _migrate_in_a_process(url, tmp_path)
        assert _revisions(url) == [database.HEAD_REVISION]
        # At head (a restart, a second replica): not even imported.
        assert _migrate_in_a_process(url, tmp_path) == []
        assert _revisions(url) == [database.HEAD_REVISION]

    if kind == "sqlite":
        check(f"sqlite:///{tmp_path / 'restarted.db'}")
    else:
        with fresh_database() as url:
            check(url)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_database_a_newer_build_migrated_is_refused_in_one_line(
    tmp_path: Path, kind: str
) -> None:
    def check(url: str) -> None:
        assert run_cli("migrate", cwd=tmp_path, env={"DATABASE_URL": url}).returncode == 0
        _stamp(url, "9999")
        for command in ("migrate", "serve"):
            result = run_cli(command, cwd=tmp_path, env={"DATABASE_URL": url})
            assert result.returncode == 1, result.stderr
            assert "Traceback" not in result.stderr
            said = result.stderr.splitlines()
            (line,) = [entry for entry in said if entry.startswith("amplify-auth-server:")]
            assert "at revision 9999" in line
            assert "a newer build migrated it" in line
        assert _revisions(url) == ["9999"]  # nothing was done to it

    if kind == "sqlite":
        check(f"sqlite:///{tmp_path / 'newer.db'}")
    else:
        with fresh_database() as url:
            check(url)


def test_the_seed_database_url_form_with_a_password_works(tmp_path: Path) -> None:
    with fresh_database() as url:
        seed_form = url.replace("postgresql://postgres@", "postgresql://postgres:auth_pass@")
        assert re.fullmatch(r"postgresql://\w+:\w+@[\d.]+:5432/\w+", seed_form)
        backend = Backend("postgres", tmp_path, seed_form)
        with running_server(backend) as server, server.client() as admin:
            assert validate(admin, create(admin)["token"])["valid"] is True


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_create_admin_token_prints_it_once_and_it_can_manage(tmp_path: Path, kind: str) -> None:
    def check(url: str) -> None:
        minted = run_cli(
            "create-admin-token", "--name", "ops", cwd=tmp_path, env={"DATABASE_URL": url}
        )
        assert minted.returncode == 0, minted.stderr
        lines = minted.stdout.splitlines()
        assert len(lines) == 1
        token = lines[0]
        assert token_is_well_formed(token)
        assert token not in minted.stderr
        assert "shown once" in minted.stderr
        backend = Backend(kind, tmp_path, url)
        with running_server(backend) as server, server.client(token=token) as ops:
            listed = ops.get("/auth/tokens")
            assert listed.status_code == 200
            assert "ops" in {r["name"] for r in listed.json()["items"]}
            assert token not in server.log()

    if kind == "sqlite":
        check(f"sqlite:///{tmp_path / 'bootstrap.db'}")
    else:
        with fresh_database() as url:
            check(url)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("", "at least 1 character", id="empty"),
        pytest.param("x" * 101, "at most 100 characters", id="too-long"),
        pytest.param(" padded", "no space at either end", id="padded"),
        pytest.param("evil\nname\x07", "no control characters", id="control"),
    ],
)
def test_create_admin_token_holds_its_name_to_the_apis_rules(
    tmp_path: Path, name: str, message: str
) -> None:
    url = f"sqlite:///{tmp_path / 'named.db'}"
    result = run_cli("create-admin-token", "--name", name, cwd=tmp_path, env={"DATABASE_URL": url})
    assert result.returncode == 2
    assert result.stdout == ""  # no token
    (line,) = result.stderr.splitlines()
    assert line.startswith("amplify-auth-server: --name: ")
    assert message in line
    assert not (tmp_path / "named.db").exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("amp_live_short", "not a valid amp_live_ token", id="short"),
        # A random value, a fixed id: every xdist worker must collect the same tests.
        pytest.param(
            with_a_bad_checksum(generate_token()), "not a valid amp_live_ token", id="bad-checksum"
        ),
    ],
)
def test_a_bad_admin_token_setting_stops_start_up_with_one_clear_line(
    tmp_path: Path, value: str, message: str
) -> None:
    result = run_cli("serve", cwd=tmp_path, env={"AUTH_ADMIN_TOKEN": value})
    assert result.returncode == 2
    assert message in result.stderr
    assert "AUTH_ADMIN_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
    assert value not in result.stderr


def test_other_bad_settings_are_refused_too(tmp_path: Path) -> None:
    for env, name in (
        ({"PORT": "99999"}, "PORT"),
        ({"TOKEN_CACHE_TTL": "soon"}, "TOKEN_CACHE_TTL"),
        ({"DATABASE_URL": "mysql://root@localhost/auth"}, "postgresql"),
    ):
        result = run_cli("migrate", cwd=tmp_path, env=env)
        assert result.returncode != 0
        assert name in result.stderr
        assert "Traceback" not in result.stderr, result.stderr


def test_auth_admin_token_is_registered_once_across_restarts(tmp_path: Path) -> None:
    backend = Backend("embedded", tmp_path)
    token, later = generate_token(), generate_token()
    for _ in range(3):
        with running_server(backend, admin_token=token) as server, server.client() as admin:
            admins = [
                r for r in admin.get("/auth/tokens").json()["items"] if "admin" in r["scopes"]
            ]
            assert len(admins) == 1
            assert admins[0]["name"] == f"admin (AUTH_ADMIN_TOKEN sha256:{hash_token(token)[:8]})"
    assert token not in server.log()
    # Another token set there later gets a name of its own: list tells them apart.
    with running_server(backend, admin_token=later) as server, server.client() as admin:
        names = {
            r["name"] for r in admin.get("/auth/tokens").json()["items"] if "admin" in r["scopes"]
        }
    assert len(names) == 2
    # No file is minted when the token comes from the environment.
    assert not (tmp_path / "amplify_auth.admin-token").exists()


def test_the_embedded_default_mints_an_admin_token_file_once(tmp_path: Path) -> None:
    server = ServerProcess(cwd=tmp_path, env=clean_environment(), admin_token=None)
    server.start()
    try:
        token_file = tmp_path / "amplify_auth.admin-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert token_is_well_formed(token)
        assert (tmp_path / "amplify_auth.db").exists()
        with server.client(token=token) as admin:
            assert admin.get("/auth/tokens").status_code == 200
        server.stop()
        server.start()
        assert token_file.read_text().strip() == token
        with server.client(token=token) as admin:
            admins = [
                r for r in admin.get("/auth/tokens").json()["items"] if "admin" in r["scopes"]
            ]
            assert len(admins) == 1
    finally:
        server.stop()
    log = server.log()
    assert "amplify_auth.admin-token" in log
    assert token not in log


def test_no_secret_reaches_the_log_even_at_debug_with_access_logs(tmp_path: Path) -> None:
    backend = Backend("embedded", tmp_path)
    env = {"LOG_LEVEL": "debug", "ACCESS_LOG": "true"}
    with running_server(backend, env=env) as server, server.client() as admin:
        secrets = [server.admin_token]
        created = create(admin, scopes=["read"])
        secrets.append(created["token"])
        validate(admin, created["token"], "read")
        validate(admin, created["token"], "write")
        admin.post(f"/auth/tokens/{created['token_id']}/revoke")
        validate(admin, created["token"])
        with server.client(token=created["token"]) as revoked:
            assert revoked.get("/auth/tokens").status_code == 401
        bad = generate_token()
        secrets.append(bad)
        with server.client(token=bad) as unknown:
            assert unknown.get("/auth/tokens").status_code == 401
        admin.post("/auth/validate", content=b'{"token": "' + bad.encode() + b'", "x": ')
    log = server.log()
    assert "POST /auth/validate" in log  # the access log is on
    for secret in secrets:
        assert secret is not None
        assert secret not in log
        assert secret[9:] not in log


def test_the_served_process_freezes_its_start_up_heap(tmp_path: Path) -> None:
    # Full collections then skip what start-up left (see freeze_start_up_heap):
    # it must happen once the app is up, so that its objects are among them.
    backend = Backend("embedded", tmp_path)
    with running_server(backend, env={"LOG_LEVEL": "debug"}) as server:
        with server.client() as admin:
            create(admin)
        log = server.log()
    frozen = re.search(r"froze (\d+) start-up objects", log)
    assert frozen is not None, log
    assert int(frozen[1]) > 50_000
    assert log.index("Application startup complete") < frozen.start()


def test_sigterm_shuts_down_gracefully(tmp_path: Path) -> None:
    backend = Backend("embedded", tmp_path)
    with running_server(backend) as server:
        with server.client() as admin:
            create(admin)
        code = server.stop()
        # uvicorn finishes its shutdown, then re-raises the signal it got.
        assert code in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.log()
        assert "Traceback" not in server.log()
        server.start()  # running_server stops it again on exit


def test_python_dash_m_and_the_console_script_are_the_same_program(tmp_path: Path) -> None:
    module = run_cli("--help", cwd=tmp_path)
    script = subprocess.run(
        [str(Path(sys.executable).with_name("amplify-auth-server")), "--help"],
        capture_output=True,
        text=True,
        env=clean_environment(),
        check=False,
    )
    assert module.returncode == script.returncode == 0
    assert "create-admin-token" in module.stdout
    assert module.stdout.replace("__main__.py", "amplify-auth-server") == script.stdout
    assert os.access(Path(sys.executable).with_name("amplify-auth-server"), os.X_OK)


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    from tests.support.services import free_port

    url = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/auth"
    for command in ("serve", "migrate", "create-admin-token"):
        result = run_cli(command, cwd=tmp_path, env={"DATABASE_URL": url})
        assert result.returncode == 1, result.stderr
        assert (
            "cannot use the database postgresql+asyncpg://postgres:***@127.0.0.1" in result.stderr
        )
        assert "hunter2" not in result.stderr
        assert "Traceback" not in result.stderr


def test_settings_are_read_from_a_dot_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"DATABASE_URL=sqlite:///{tmp_path / 'from-dotenv.db'}\n")
    result = run_cli("create-admin-token", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from-dotenv.db").exists()
    assert not (tmp_path / "amplify_auth.db").exists()


def test_a_token_tried_before_its_registration_is_accepted_once_registered(
    backend: Backend,
) -> None:
    """The "unknown" answer cached (in Redis, which outlives a restart) for a token
    must not outlive that token's registration as AUTH_ADMIN_TOKEN."""
    token = generate_token()
    with running_server(backend) as before, before.client(token=None) as client:
        assert validate(client, token)["reason"] == "unknown"
    with running_server(backend, admin_token=token) as after, after.client(token=token) as admin:
        assert validate(admin, token)["valid"] is True
        assert admin.get("/auth/tokens").status_code == 200


def test_an_in_memory_database_is_refused(tmp_path: Path) -> None:
    result = run_cli("migrate", cwd=tmp_path, env={"DATABASE_URL": "sqlite:///:memory:"})
    assert result.returncode == 2
    assert "in-memory" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_admin_token_file_others_can_read_is_reported(tmp_path: Path) -> None:
    token_file = tmp_path / "amplify_auth.admin-token"
    token = generate_token()
    token_file.write_text(token + "\n")
    token_file.chmod(0o644)
    server = ServerProcess(cwd=tmp_path, env=clean_environment(), admin_token=None)
    server.start()
    try:
        with server.client(token=token) as admin:
            assert admin.get("/auth/tokens").status_code == 200
    finally:
        server.stop()
    assert "can be read by other accounts (mode 644)" in server.log()
    assert token not in server.log()
