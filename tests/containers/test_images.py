"""Each image runs what the tests run natively; the auth entrypoint, run here, migrates, serves."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.containers import (
    AUTH_DOCKERFILE,
    AUTH_SERVICE_COMMAND,
    EXAMPLE_COMMAND,
    EXAMPLE_DOCKERFILE,
    ROOT,
    compose,
    env_of,
    exec_form,
    instructions,
    native,
)
from tests.support.readiness import wait_until_serving
from tests.support.server import clean_environment
from tests.support.services import free_port, fresh_database, redis_namespace

BIN = Path(sys.executable).parent


def copies(dockerfile: Path) -> list[tuple[str, str]]:
    """``(source, destination)`` of every source of every COPY."""
    pairs = []
    for name, arguments in instructions(dockerfile):
        if name == "COPY":
            *sources, destination = arguments.split()
            pairs += [(source, destination) for source in sources]
    return pairs


def test_the_auth_image_runs_the_entrypoint_the_tests_run() -> None:
    entrypoint, command = (
        exec_form(AUTH_DOCKERFILE, "ENTRYPOINT"),
        exec_form(AUTH_DOCKERFILE, "CMD"),
    )
    assert entrypoint is not None
    assert command is not None
    assert (*entrypoint, *command) == AUTH_SERVICE_COMMAND
    # The script in the image is this repository's file, on PATH.
    assert ("docker-entrypoint.sh", "/usr/local/bin/docker-entrypoint.sh") in copies(
        AUTH_DOCKERFILE
    )
    assert os.access(ROOT / "docker-entrypoint.sh", os.X_OK)


def test_the_auth_image_puts_the_server_and_auth_cli_on_path() -> None:
    runs = [arguments for name, arguments in instructions(AUTH_DOCKERFILE) if name == "RUN"]
    assert 'pip install ".[server,cli]"' in runs
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"amplify-auth-server", "auth-cli"} <= set(scripts)
    env = env_of(AUTH_DOCKERFILE)
    assert (env["HOST"], env["PORT"]) == ("0.0.0.0", "8000")
    # Where the server mints its admin token, and where auth-cli looks for it:
    # the working directory, which docker-compose.yml keeps on a volume.
    workdirs = [arguments for name, arguments in instructions(AUTH_DOCKERFILE) if name == "WORKDIR"]
    assert env["ADMIN_TOKEN_FILE"] == f"{workdirs[-1]}/amplify_auth.admin-token"
    assert f"auth-data:{workdirs[-1]}" in compose()["services"]["auth-service"]["volumes"]


def test_the_example_image_runs_the_command_the_tests_run() -> None:
    assert exec_form(EXAMPLE_DOCKERFILE, "ENTRYPOINT") is None
    command = exec_form(EXAMPLE_DOCKERFILE, "CMD")
    assert command is not None
    assert tuple(command) == EXAMPLE_COMMAND
    # ...from the directory that holds app.py, as the native run does.
    workdirs = [
        arguments for name, arguments in instructions(EXAMPLE_DOCKERFILE) if name == "WORKDIR"
    ]
    assert ("examples/authenticated_service/app.py", "./app.py") in copies(EXAMPLE_DOCKERFILE)
    assert workdirs[-1] == "/srv"
    runs = [arguments for name, arguments in instructions(EXAMPLE_DOCKERFILE) if name == "RUN"]
    assert 'pip install ".[service]"' in runs
    # The seed runs it with `-p 8002:8000`: it listens on 8000, on every interface.
    env = env_of(EXAMPLE_DOCKERFILE)
    assert (env["HOST"], env["PORT"]) == ("0.0.0.0", "8000")
    assert "AUTH_SERVICE_URL" not in env  # no default: it stops and says so


@pytest.mark.parametrize(
    "dockerfile", [AUTH_DOCKERFILE, EXAMPLE_DOCKERFILE], ids=["auth", "example"]
)
def test_the_images_copy_what_exists_and_the_build_context_keeps(dockerfile: Path) -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for source, _ in copies(dockerfile):
        assert (ROOT / source).exists(), source
        assert source.split("/")[0] not in ignored, source
    # The build context never carries local secrets into an image.
    assert {".env", "*.admin-token", "*.db", ".venv", ".git"} <= ignored
    assert exec_form(dockerfile, "CMD") is not None
    users = [arguments for name, arguments in instructions(dockerfile) if name == "USER"]
    assert users
    assert users[-1] != "root"


# -- the auth image's command, run natively -------------------------------------


@contextmanager
def entrypoint(directory: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    log = (directory / "entrypoint.log").open("ab")
    process = subprocess.Popen(
        native(AUTH_SERVICE_COMMAND), cwd=directory, env=env, stdout=log, stderr=log
    )
    log.close()
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def compose_like_environment(
    directory: Path, database_url: str, redis_url: str, prefix: str, port: int
) -> dict[str, str]:
    """What docker-compose.yml and the image give the container, but on loopback and a free port."""
    image = env_of(AUTH_DOCKERFILE)
    env = clean_environment(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": prefix,
            "AUTH_ADMIN_TOKEN": "",  # docker-compose.yml's default
            "ADMIN_TOKEN_FILE": str(directory / Path(image["ADMIN_TOKEN_FILE"]).name),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            # The server would migrate on start too: off here, so that only the
            # entrypoint's own `migrate` can have made the schema it serves.
            "MIGRATE_ON_START": "false",
        }
    )
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    for name in ("AUTH_URL", "AUTH_SERVICE_URL"):
        env.pop(name, None)
    return env


@pytest.mark.postgres
@pytest.mark.redis
def test_the_entrypoint_migrates_then_serves_and_auth_cli_works_inside(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "entrypoint.log"
    healthcheck = compose()["services"]["auth-service"]["healthcheck"]["test"]
    assert healthcheck[0] == "CMD"
    probe = native(tuple(healthcheck[1:]))
    with fresh_database() as database_url, redis_namespace() as namespace:
        env = compose_like_environment(
            tmp_path, database_url, namespace.url, namespace.prefix, port
        )
        with entrypoint(tmp_path, env) as process:
            # Migrations first, then the server: a slower start than a bare server's.
            response = wait_until_serving(process, url, log, timeout=60)
            assert response.status_code == 200, response.text
            # exec: the server itself is the entrypoint's process, so SIGTERM reaches it.
            cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
            assert any(part.endswith(b"amplify-auth-server") for part in cmdline), cmdline
            # docker-compose.yml's healthcheck, as the container runs it.
            assert subprocess.run(probe, env=env, timeout=30).returncode == 0
            token_file = tmp_path / "amplify_auth.admin-token"
            assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
            # `docker compose exec auth-service auth-cli create ...`: the same
            # working directory and environment; only the port differs here.
            cli_env = {**env, "AUTH_URL": f"http://localhost:{port}"}

            def auth_cli(*args: str) -> str:
                run = subprocess.run(
                    ["auth-cli", *args],
                    cwd=tmp_path,
                    env=cli_env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert run.returncode == 0, run.stderr
                return run.stdout

            auth_cli("create", "readonly-token", "--scopes", "read", "--ttl", "365")
            assert "readonly-token" in auth_cli("--json", "list")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) in (0, -signal.SIGTERM)
        assert subprocess.run(probe, env=env, timeout=30, capture_output=True).returncode != 0
    text = log.read_text()
    assert "Application shutdown complete" in text
    assert token_file.read_text().strip() not in text


def test_an_unreachable_database_stops_the_entrypoint_before_the_server(tmp_path: Path) -> None:
    port = free_port()
    nowhere = f"postgresql://auth_user:auth_pass@127.0.0.1:{free_port()}/auth_db"
    env = compose_like_environment(tmp_path, nowhere, "redis://127.0.0.1:1/0", "unused", port)
    with entrypoint(tmp_path, env) as process:
        assert process.wait(timeout=60) == 1
    lines = (tmp_path / "entrypoint.log").read_text().strip().splitlines()
    assert lines[-1].startswith("amplify-auth-server: cannot use the database postgresql")
    assert "auth_pass" not in "\n".join(lines)
    assert "Traceback" not in "\n".join(lines)
