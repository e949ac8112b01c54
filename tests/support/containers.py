"""What the container files say, read as data: Dockerfiles, docker-compose.yml, .env.example.

No Docker engine runs where the tests run, so the tests prove the container
files by reading them: the commands a Dockerfile runs are compared with the
commands the tests run natively (the constants below), and docker-compose.yml
is interpolated as Compose would do it, to check what each override produces.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
AUTH_DOCKERFILE = ROOT / "Dockerfile"
EXAMPLE_DIRECTORY = ROOT / "examples" / "authenticated_service"
EXAMPLE_DOCKERFILE = EXAMPLE_DIRECTORY / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

#: The auth service image's ENTRYPOINT + CMD; tests/containers runs it natively.
AUTH_SERVICE_COMMAND = ("docker-entrypoint.sh", "amplify-auth-server")
#: The example image's CMD, run from the directory that holds app.py.
EXAMPLE_COMMAND = ("python", "app.py")
#: The seed's variables and their defaults (the issue lists them).
SEED_VARIABLES = {
    "AUTH_SERVICE_PORT": "8000",
    "POSTGRES_PORT": "5432",
    "POSTGRES_DB": "auth_db",
    "POSTGRES_USER": "auth_user",
    "POSTGRES_PASSWORD": "auth_pass",
    "REDIS_PORT": "6379",
}


def native(command: tuple[str, ...]) -> list[str]:
    """``command`` as this machine runs it: the image's ``python`` is this interpreter,
    and the entrypoint script is the repository's own file."""
    mapping = {"python": sys.executable, "docker-entrypoint.sh": str(ROOT / "docker-entrypoint.sh")}
    return [mapping.get(part, part) for part in command]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of each instruction, continuation lines joined."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        found.append((keyword.upper(), arguments.strip()))
    assert not pending, f"{dockerfile}: a continued line is never finished"
    return found


def exec_form(dockerfile: Path, keyword: str) -> list[str] | None:
    """The last ``keyword`` (ENTRYPOINT or CMD) in exec form; None when absent.

    Shell form is refused: it would run under ``/bin/sh -c``, which does not
    pass SIGTERM on, so ``docker stop`` would kill the server instead of
    stopping it gracefully.
    """
    values = [arguments for name, arguments in instructions(dockerfile) if name == keyword]
    if not values:
        return None
    parsed = json.loads(values[-1])
    assert isinstance(parsed, list), values[-1]
    assert all(isinstance(part, str) for part in parsed), values[-1]
    return parsed


def env_of(dockerfile: Path) -> dict[str, str]:
    """The ``ENV`` settings of a Dockerfile (``KEY=value`` form)."""
    env: dict[str, str] = {}
    for name, arguments in instructions(dockerfile):
        if name == "ENV":
            for pair in arguments.split():
                key, sep, value = pair.partition("=")
                assert sep, f"ENV {arguments!r}: use the KEY=value form"
                env[key] = value
    return env


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_]\w*)")


def variables(text: str) -> dict[str, str | None]:
    """Every ``${NAME:-default}`` in ``text``: name to default (None without one)."""
    found: dict[str, str | None] = {}
    for match in _VARIABLE.finditer(text):
        if match.group(0) != "$$":
            name = match.group(1) or match.group(3)
            found[name] = match.group(2)
    return found


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """``value`` with Compose's interpolation applied, as ``docker compose config`` would.

    ``${NAME:-default}`` takes the default when NAME is unset or empty;
    ``$$`` is a literal ``$``. A variable without a default must be set.
    """
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(3)
        default = match.group(2)
        given = env.get(name, "")
        if given:
            return given
        assert default is not None, f"${{{name}}} has no default and is not set"
        return default

    return _VARIABLE.sub(substitute, value)


def dotenv(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """``(set, commented)``: an env file's ``NAME=value`` lines, and its ``# NAME=value`` ones."""
    active: dict[str, str] = {}
    commented: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"(# )?([A-Z_][A-Z0-9_]*)=(.*)", line)
        if match:
            (commented if match.group(1) else active)[match.group(2)] = match.group(3)
    return active, commented
