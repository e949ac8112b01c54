"""docker-compose.yml is valid Compose: the seed's profile, services, ports, variables, network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from amplify_auth_server.app import SHUTDOWN_GRACE
from tests.support.containers import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    ROOT,
    SEED_VARIABLES,
    compose,
    dotenv,
    interpolate,
    variables,
)

BIN = Path(sys.executable).parent
SERVICES = {"postgres", "redis", "auth-service"}

#: The seed's override example (README: "To change ports and database credentials").
SEED_OVERRIDES = {
    "AUTH_SERVICE_PORT": "8001",
    "POSTGRES_PORT": "5433",
    "POSTGRES_DB": "my_auth_db",
    "POSTGRES_USER": "my_user",
    "POSTGRES_PASSWORD": "my_pass",
    "REDIS_PORT": "6379",
}


def resolved(env: dict[str, str]) -> dict[str, Any]:
    """The services as ``docker compose config`` would print them with ``env`` set."""
    services: dict[str, Any] = interpolate(compose(), env)["services"]
    return services


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    result = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_project_and_its_network_have_the_seeds_names() -> None:
    config = compose()
    # Compose names a project's network <project>_<network>: the name other
    # services join with `--network auth-service_amplify-net`.
    assert config["name"] == "auth-service"
    assert set(config["networks"]) == {"amplify-net"}
    for name, service in config["services"].items():
        assert service["networks"] == ["amplify-net"], name


def test_the_auth_profile_runs_postgres_redis_and_the_auth_service_with_healthchecks() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert service["profiles"] == ["auth"], name
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    auth = services["auth-service"]
    assert auth["build"] == "."  # the root Dockerfile (tests/containers/test_images.py)
    assert auth["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }


def test_the_auth_service_is_given_longer_to_stop_than_its_own_grace() -> None:
    # Compose's default (10 s) would SIGKILL the server as its grace for the
    # requests in flight ends, before the writer's queue is drained.
    grace = compose()["services"]["auth-service"]["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace.removesuffix("s")) >= 2 * SHUTDOWN_GRACE


def test_postgres_keeps_its_data_in_a_named_volume() -> None:
    config = compose()
    assert config["services"]["postgres"]["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert "postgres-data" in config["volumes"]


def test_every_variable_has_a_default_and_the_seeds_are_the_seeds() -> None:
    found = variables(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert {name: found.get(name) for name in SEED_VARIABLES} == SEED_VARIABLES
    # `docker compose --profile auth up -d` works with nothing set.
    assert [name for name, default in found.items() if default is None] == []


def test_env_example_sets_the_seeds_variables_and_shows_the_others() -> None:
    active, commented = dotenv(ENV_EXAMPLE)
    assert active == SEED_VARIABLES
    others = {
        name: default
        for name, default in variables(COMPOSE_FILE.read_text(encoding="utf-8")).items()
        if name not in SEED_VARIABLES
    }
    assert commented == others
    # .env beside docker-compose.yml is where Compose reads it, and git must ignore it.
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()


def test_the_defaults_give_the_seeds_ports_and_database() -> None:
    services = resolved({})
    assert services["auth-service"]["ports"] == ["127.0.0.1:8000:8000"]
    assert services["postgres"]["ports"] == ["127.0.0.1:5432:5432"]
    assert services["redis"]["ports"] == ["127.0.0.1:6379:6379"]
    assert services["postgres"]["environment"] == {
        "POSTGRES_DB": "auth_db",
        "POSTGRES_USER": "auth_user",
        "POSTGRES_PASSWORD": "auth_pass",
    }
    environment = services["auth-service"]["environment"]
    assert environment["DATABASE_URL"] == "postgresql://auth_user:auth_pass@postgres:5432/auth_db"
    assert environment["REDIS_URL"] == "redis://redis:6379/0"


def test_redis_keeps_nothing_across_restarts() -> None:
    # Restored from a snapshot, it would serve token states older than the database's.
    command = resolved({})["redis"]["command"]
    assert command == ["redis-server", "--save", "", "--appendonly", "no"]


def test_the_seeds_overrides_move_ports_and_credentials() -> None:
    """The seed's override example, from the shell or from .env: what Compose then runs."""
    services = resolved(SEED_OVERRIDES)
    assert services["auth-service"]["ports"] == ["127.0.0.1:8001:8000"]
    assert services["postgres"]["ports"] == ["127.0.0.1:5433:5432"]
    assert services["postgres"]["environment"] == {
        "POSTGRES_DB": "my_auth_db",
        "POSTGRES_USER": "my_user",
        "POSTGRES_PASSWORD": "my_pass",
    }
    # Inside the network the ports do not move: only the host's side does.
    assert (
        services["auth-service"]["environment"]["DATABASE_URL"]
        == "postgresql://my_user:my_pass@postgres:5432/my_auth_db"
    )
    # An exported-but-empty variable takes the default, as with Compose's :-.
    assert resolved({"AUTH_SERVICE_PORT": ""})["auth-service"]["ports"] == ["127.0.0.1:8000:8000"]


def test_the_postgres_healthcheck_reads_the_containers_own_variables() -> None:
    # $$ is a literal $: the container's shell expands it, with the values
    # the postgres service was given, whatever was overridden.
    test = resolved(SEED_OVERRIDES)["postgres"]["healthcheck"]["test"]
    assert test == ["CMD-SHELL", 'pg_isready -U "${POSTGRES_USER}" -d "${POSTGRES_DB}"']
