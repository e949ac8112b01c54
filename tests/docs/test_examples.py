"""Every code block in docs/ runs, against a real server, and says what the code does.

How each fenced block is treated, by its language:

* ``python``: executed in this process, in page order, in one namespace per
  page, so a page reads as one session (a later block may use a client or a
  token an earlier block made). Functions named ``test_*`` that a block
  defines are then called, as pytest would call them (the page's testing
  examples).
  Two kinds of page run in a process of their own instead
  (:data:`OWN_PROCESS`): a page whose example configures process-wide state
  (Django's settings can be configured once per process), and the test kit's
  page, whose blocks are a test module run by pytest itself, fixtures and all.
* ``bash``: run with ``bash`` under ``set -euo pipefail``, in page order, as
  one shell session per page: the variables a block sets are there for the
  next blocks of the same page.
* ``console``: shown, not run. Each ``$`` command in it must be one that a
  test below proves by other means (:data:`CONSOLE_PROOFS`): server start
  commands are started and polled until ``/health`` answers; install
  commands are not run (they would rewrite the environment under test), but
  the extras, scripts and dependencies they name must exist.
* ``json`` and ``text``: samples. JSON samples must parse, and one of an
  answer about a token (a create, a validation, a record, an audit entry)
  must have exactly the fields of one of the API's answers.
* ``yaml``, ``ini`` and ``dockerfile``: excerpts of the files we ship
  (:data:`EXCERPTS`): each block must appear, verbatim, in one of them.
* Anything else, or no language, fails: no block goes untested by accident.

Both kinds of runnable block see what a reader who followed the quick start
has: the embedded server, started as the quick start starts it (no
``AUTH_ADMIN_TOKEN``, so it mints ``amplify_auth.admin-token``), its working
directory as theirs, ``AUTH_SERVICE_URL`` and ``AUTH_ADMIN_TOKEN`` exported,
and the virtual environment's ``bin`` first on ``PATH``.

Test ids are ``page.md:LINE-language``, LINE being the opening fence's line.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

import amplify_auth_client
from amplify_auth_client import AsyncAuthClient, AuthClient, token_is_well_formed
from amplify_auth_client._config import ENV_ADMIN_TOKEN, ENV_BASE_URL
from amplify_auth_server import schemas
from amplify_auth_server.config import Settings
from tests.support.readiness import wait_until_serving
from tests.support.server import QuickStartServer, clean_environment, quick_start_server
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BIN = Path(sys.executable).parent

RUNNABLE = frozenset({"python", "bash"})
SAMPLES = frozenset({"console", "json", "text"})
#: Languages whose blocks quote a shipped file, and the files they may quote.
EXCERPTS = {
    "yaml": ("docker-compose.yml",),
    "ini": (".env.example",),
    "dockerfile": ("Dockerfile", "examples/authenticated_service/Dockerfile"),
}

_COMPOSE = "tests/containers/test_compose.py::"
_IMAGES = "tests/containers/test_images.py::"
_EXAMPLE = "tests/examples/test_authenticated_service.py::"

UVICORN = "uvicorn amplify_auth_server.app:create_app --factory --timeout-graceful-shutdown 10"

#: Every command a ``console`` block may show, and the test that proves it.
CONSOLE_PROOFS = {
    "python -m pip install '.[server]'": "test_install_commands_name_what_exists",
    "python -m pip install '.[fastapi]'": "test_install_commands_name_what_exists",
    "python -m pip install '.[drf]'": "test_install_commands_name_what_exists",
    "python -m pip install '.[flask]'": "test_install_commands_name_what_exists",
    "python -m pip install '.[grpc]'": "test_install_commands_name_what_exists",
    "python -m pip install .": "test_install_commands_name_what_exists",
    "amplify-auth-server": "test_quick_start_session",
    "export AUTH_SERVICE_URL=http://127.0.0.1:8000": "test_quick_start_session",
    'export AUTH_ADMIN_TOKEN="$(cat amplify_auth.admin-token)"': "test_quick_start_session",
    "python -m amplify_auth_server": "test_start_commands_serve",
    UVICORN: "test_start_commands_serve",
    # docs/deployment.md: no Docker engine here; each proof reads the file the command uses.
    "docker compose --profile auth up -d": _COMPOSE
    + "test_the_auth_profile_runs_postgres_redis_and_the_auth_service_with_healthchecks",
    "docker compose exec auth-service auth-cli create readonly-token --scopes read --ttl 365": (
        _IMAGES + "test_the_entrypoint_migrates_then_serves_and_auth_cli_works_inside"
    ),
    (
        "AUTH_SERVICE_PORT=8001 POSTGRES_PORT=5433 POSTGRES_DB=my_auth_db POSTGRES_USER=my_user "
        "POSTGRES_PASSWORD=my_pass docker compose --profile auth up -d"
    ): _COMPOSE + "test_the_seeds_overrides_move_ports_and_credentials",
    "cp .env.example .env": _COMPOSE
    + "test_env_example_sets_the_seeds_variables_and_shows_the_others",
    "docker build -f examples/authenticated_service/Dockerfile -t authenticated-service .": (
        _IMAGES + "test_the_example_image_runs_the_command_the_tests_run"
    ),
    (
        "docker run -p 8002:8000 --network auth-service_amplify-net "
        "-e AUTH_SERVICE_URL=http://auth-service:8000 authenticated-service"
    ): _COMPOSE + "test_the_project_and_its_network_have_the_seeds_names",
    (
        "AUTH_SERVICE_URL=http://127.0.0.1:8000 PORT=8001 "
        "python examples/authenticated_service/app.py"
    ): _EXAMPLE + "test_echo_returns_the_body_and_the_token_name",
}

_FENCE = re.compile(r"^```(\S*)\s*$")
_TOKEN_SHAPED = re.compile(r"amp_live_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    language: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}-{self.language or 'none'}"


def read_blocks(path: Path) -> list[Block]:
    blocks: list[Block] = []
    opened: tuple[int, str] | None = None
    lines: list[str] = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _FENCE.match(text)
        if opened is None:
            if match:
                opened, lines = (number, match.group(1)), []
        elif text.rstrip() == "```":
            blocks.append(Block(path.name, opened[0], opened[1], "\n".join(lines) + "\n"))
            opened = None
        else:
            lines.append(text)
    assert opened is None, f"{path.name}:{opened}: a code block is never closed"
    return blocks


PAGES = sorted(DOCS.glob("*.md"))
BLOCKS = [block for page in PAGES for block in read_blocks(page)]


#: Pages whose python blocks run in a process of their own: "exec" runs them as
#: one session, as in this process; "pytest" runs them as one test module.
OWN_PROCESS = {"django.md": "exec", "testing.md": "pytest"}


def blocks_of(*languages: str) -> list[Any]:
    return [
        pytest.param(b, id=b.id)
        for b in BLOCKS
        if b.language in languages and not (b.language == "python" and b.page in OWN_PROCESS)
    ]


# -- the server the examples run against ---------------------------------------


@dataclass(frozen=True)
class DocsServer(QuickStartServer):
    """The quick start's server, and the shell of a reader who followed it."""

    def environment(self) -> dict[str, str]:
        """What the examples' process sees: the reader's shell after the quick start."""
        env = clean_environment(
            {ENV_BASE_URL: self.url, ENV_ADMIN_TOKEN: self.admin_token, "NO_COLOR": "1"}
        )
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        return env


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocsServer]:
    # The examples read the admin token from the file the server minted.
    with quick_start_server(tmp_path_factory.mktemp("docs-server")) as server:
        yield DocsServer(server.process, server.directory, server.admin_token)


@pytest.fixture
def reader_shell(docs_server: DocsServer, monkeypatch: pytest.MonkeyPatch) -> DocsServer:
    """This process, set up as the reader's: their environment and directory."""
    monkeypatch.setenv(ENV_BASE_URL, docs_server.url)
    monkeypatch.setenv(ENV_ADMIN_TOKEN, docs_server.admin_token)
    monkeypatch.chdir(docs_server.directory)
    return docs_server


# -- running the blocks ---------------------------------------------------------

_namespaces: dict[str, dict[str, Any]] = {}
_failed: set[tuple[str, str]] = set()

# Saves the variables a block set (new or changed since the session's start)
# for the next block of the page: declare -p prints them as re-runnable code.
_BASH_PROLOGUE = """set -euo pipefail
__docs_initial=$(compgen -v)
source "$DOCS_SHELL_STATE"
"""
_BASH_EPILOGUE = """
for __docs_name in $(compgen -v); do
  case "$__docs_name" in __docs_*|BASH*|FUNCNAME|PIPESTATUS|_) continue ;; esac
  if ! grep -qxF "$__docs_name" <<<"$__docs_initial"; then declare -p "$__docs_name"; fi
done > "$DOCS_SHELL_STATE.next"
mv "$DOCS_SHELL_STATE.next" "$DOCS_SHELL_STATE"
"""


@contextmanager
def page_session(block: Block) -> Iterator[None]:
    """Fail at once after an earlier failure in the same session, which this block may need."""
    session = (block.page, block.language)
    if session in _failed:
        pytest.fail(f"an earlier {block.language} block of {block.page} failed")
    try:
        yield
    except BaseException:
        _failed.add(session)
        raise


@pytest.mark.parametrize("block", blocks_of("python"))
def test_python_block(block: Block, reader_shell: DocsServer) -> None:
    namespace = _namespaces.setdefault(block.page, {"__name__": f"docs.{block.page}"})
    before = {name: value for name, value in namespace.items() if name.startswith("test_")}
    # Padded so that tracebacks give the line numbers of the page itself.
    code = compile("\n" * block.line + block.code, str(DOCS / block.page), "exec")
    with page_session(block):
        exec(code, namespace)  # noqa: S102 - running the documentation is the point
        for name, value in list(namespace.items()):
            if name.startswith("test_") and callable(value) and before.get(name) is not value:
                value()


_EXEC_PAGE = """
import sys
from pathlib import Path
from tests.docs.test_examples import read_blocks
# The page runs as a script would: its module is __main__ (Django imports its
# ROOT_URLCONF, which the page names as __name__).
namespace = sys.modules["__main__"].__dict__
for block in read_blocks(Path(sys.argv[1])):
    if block.language == "python":
        exec(compile("\\n" * block.line + block.code, sys.argv[1], "exec"), namespace)
for name, value in list(namespace.items()):
    if name.startswith("test_") and callable(value):
        value()
"""


@pytest.mark.parametrize("page", sorted(OWN_PROCESS))
def test_page_in_its_own_process(page: str, docs_server: DocsServer, tmp_path: Path) -> None:
    path = DOCS / page
    env = {**docs_server.environment(), "PYTHONPATH": str(ROOT)}
    if OWN_PROCESS[page] == "exec":
        command = [sys.executable, "-c", _EXEC_PAGE, str(path)]
    else:
        module = tmp_path / f"test_{path.stem}_page.py"
        module.write_text(
            "".join(b.code for b in read_blocks(path) if b.language == "python"), encoding="utf-8"
        )
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)]
    result = subprocess.run(
        command,
        cwd=docs_server.directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}"


@pytest.mark.parametrize("block", blocks_of("bash"))
def test_bash_block(block: Block, docs_server: DocsServer) -> None:
    state = docs_server.directory / f".shell-{block.page}"
    state.touch()
    env = {**docs_server.environment(), "DOCS_SHELL_STATE": str(state)}
    with page_session(block):
        result = subprocess.run(
            ["bash", "-c", _BASH_PROLOGUE + block.code + _BASH_EPILOGUE],
            cwd=docs_server.directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (
            f"{block.id} exited with {result.returncode}\n"
            f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
        )


@pytest.mark.parametrize("block", blocks_of("json"))
def test_json_sample_parses(block: Block) -> None:
    json.loads(block.code)


def _answer_fields() -> dict[frozenset[str], str]:
    """The field names of every answer the API sends, by model (their aliases)."""
    models = [
        m
        for m in vars(schemas).values()
        if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == schemas.__name__
    ]
    return {
        frozenset(field.alias or name for name, field in m.model_fields.items()): m.__name__
        for m in models
        if m.__name__.endswith("Response")
    }


@pytest.mark.parametrize("block", blocks_of("json"))
def test_a_sample_of_a_token_or_audit_answer_has_exactly_its_fields(block: Block) -> None:
    """A sample of an answer about a token (a create, a validation, a record, an audit
    entry) shows every field the API sends and no other: a field added to an
    answer, or renamed, fails here until the page shows it."""
    sample = json.loads(block.code)
    if not isinstance(sample, dict) or not {"token", "token_id"} & set(sample):
        return  # another shape: an event's payload, an error, a request body
    answers = _answer_fields()
    keys = frozenset(sample)
    assert keys in answers, "no answer has exactly these fields; the nearest, " + ", ".join(
        f"{answers[k]} (missing {sorted(k - keys)}, extra {sorted(keys - k)})"
        for k in sorted(answers, key=lambda k: len(k ^ keys))[:2]
    )


def test_every_block_has_a_known_language() -> None:
    unknown = [b.id for b in BLOCKS if b.language not in RUNNABLE | SAMPLES | set(EXCERPTS)]
    assert unknown == [], "use python or bash (run), console (proven), json or text (samples)"


@pytest.mark.parametrize("block", blocks_of(*EXCERPTS))
def test_excerpt_is_in_a_shipped_file(block: Block) -> None:
    files = [(ROOT / name).read_text(encoding="utf-8") for name in EXCERPTS[block.language]]
    assert any(block.code in text for text in files), f"not in {EXCERPTS[block.language]}"


def console_commands() -> list[tuple[str, str]]:
    """``(block id, command)`` for every ``$`` line of every console block."""
    found = []
    for block in BLOCKS:
        if block.language == "console":
            commands = [line[2:] for line in block.code.splitlines() if line.startswith("$ ")]
            assert commands, f"{block.id}: a console block without a $ command should be text"
            found += [(block.id, command) for command in commands]
    return found


def test_console_commands_are_proven() -> None:
    unproven = [(where, c) for where, c in console_commands() if c not in CONSOLE_PROOFS]
    assert unproven == [], "add a proof to CONSOLE_PROOFS, or make the block runnable"
    shown = {command for _, command in console_commands()}
    assert set(CONSOLE_PROOFS) <= shown, "a proof for a command the docs no longer show"
    assert all(map(proof_exists, CONSOLE_PROOFS.values()))


def proof_exists(proof: str) -> bool:
    """A test of this module, or ``tests/path.py::test_name`` elsewhere."""
    path, _, name = proof.rpartition("::")
    if not path:
        return proof in globals()
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return name.startswith("test_") and callable(getattr(module, name, None))


def test_docs_hold_no_usable_token() -> None:
    # A well-formed token in the docs could end up as someone's AUTH_ADMIN_TOKEN;
    # ours all fail the checksum, so no server can ever accept them.
    shaped = [m.group() for page in PAGES for m in _TOKEN_SHAPED.finditer(page.read_text())]
    assert shaped, "the docs show example tokens; this test must see them"
    assert [t for t in shaped if token_is_well_formed(t)] == []


# -- the tables that state defaults -------------------------------------------


def table(page: str, header: str) -> dict[str, str]:
    """The table of ``page`` whose header row starts with ``header``: first code -> second cell."""
    lines = (DOCS / page).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[first_code(cells[0])] = cells[1]
    return rows


def first_code(cell: str) -> str:
    match = re.search(r"`([^`]*)`", cell)
    assert match, cell
    return match.group(1)


def test_settings_table_matches_the_code() -> None:
    rows = table("server.md", "| variable | default |")
    assert list(rows) == [name.upper() for name in Settings.model_fields]
    for name, field in Settings.model_fields.items():
        cell, default = rows[name.upper()], field.default
        if default is None:
            assert cell.startswith("unset"), name
        else:
            shown = str(default).lower() if isinstance(default, bool) else str(default)
            assert first_code(cell) == shown, name


def test_client_options_table_matches_the_code() -> None:
    rows = table("client.md", "| argument | default |")
    for client in (AuthClient, AsyncAuthClient):
        parameters = dict(inspect.signature(client.__init__).parameters)
        del parameters["self"]
        assert list(rows) == list(parameters), client.__name__
        for name, parameter in parameters.items():
            constant = re.fullmatch(r"`(DEFAULT_\w+)` = `([^`]+)`", rows[name])
            if constant:
                value = getattr(amplify_auth_client, constant.group(1))
                assert value == ast.literal_eval(constant.group(2)), name
                assert parameter.default == value, name
            else:
                assert parameter.default is None, name
    assert ENV_BASE_URL in rows["base_url"]
    assert ENV_ADMIN_TOKEN in rows["admin_token"]


# -- the console commands, proven -----------------------------------------------


def test_install_commands_name_what_exists() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installs = [c for c in CONSOLE_PROOFS if c.startswith("python -m pip install")]
    for command in installs:
        target = shlex.split(command)[-1]
        extras = re.fullmatch(r"\.(?:\[(.*)\])?", target)
        assert extras, command
        for extra in filter(None, (extras.group(1) or "").split(",")):
            assert extra in project["optional-dependencies"], command
    assert "amplify-auth-server" in project["scripts"]
    # client.md says what the base install brings.
    base = {re.split(r"[<>=\[ ]", requirement)[0] for requirement in project["dependencies"]}
    assert base == {"httpx", "httpx-sse", "sniffio"}


@contextmanager
def started(command: str, directory: Path, env: dict[str, str], port: int) -> Iterator[str]:
    """``command`` run as a shell would run it, until it answers ``/health``."""
    log_path = directory / "server.log"
    log = log_path.open("ab")
    process = subprocess.Popen(
        ["bash", "-c", f"exec {command}"], cwd=directory, env=env, stdout=log, stderr=log
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        response = wait_until_serving(process, url, log_path)
        assert response.status_code == 200, response.text
        yield url
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.wait(timeout=20) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_quick_start_session(tmp_path: Path) -> None:
    """index.md's terminal session, replayed; the one liberty is the port (8000 may be taken)."""
    port = free_port()
    env = clean_environment({"PORT": str(port)})
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    for name in (ENV_BASE_URL, ENV_ADMIN_TOKEN, "AUTH_URL"):
        env.pop(name, None)
    with started("amplify-auth-server", tmp_path, env, port):
        token_file = tmp_path / "amplify_auth.admin-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        exports = [c for c in CONSOLE_PROOFS if c.startswith("export ")]
        session = "\n".join(exports).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        check = (
            "from amplify_auth_client import AuthClient\n"
            "with AuthClient() as auth:\n"
            "    assert [t.name for t in auth.list_tokens()] == ['admin (bootstrap)']\n"
        )
        result = subprocess.run(
            ["bash", "-c", f"set -euo pipefail\n{session}\npython - <<'EOF'\n{check}EOF\n"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
    log = (tmp_path / "server.log").read_text()
    assert "minted an admin token into amplify_auth.admin-token" in log
    assert token_file.read_text().strip() not in log


@pytest.mark.parametrize(
    "command",
    ["python -m amplify_auth_server", UVICORN],
)
def test_start_commands_serve(command: str, tmp_path: Path) -> None:
    port = free_port()
    # uvicorn reads UVICORN_PORT; our own commands read PORT.
    env = clean_environment({"PORT": str(port), "UVICORN_PORT": str(port)})
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    with started(command, tmp_path, env, port) as url:
        assert httpx.get(url + "/health").json()["components"]["database"] == "healthy"
    assert (tmp_path / "amplify_auth.db").exists()


# Last in this module: after every example has run against the docs server.
def test_the_examples_left_no_secret_or_traceback_in_the_server_log(
    docs_server: DocsServer,
) -> None:
    log = docs_server.process.log()
    assert _TOKEN_SHAPED.search(log) is None
    assert "Traceback" not in log


def test_every_metric_the_server_exports_is_documented() -> None:
    """A metric added to the registry and to no page fails here: an operator reads
    the server page's table (and the webhooks page's) to build dashboards."""
    from amplify_auth_server.metrics import Metrics

    pages = (DOCS / "server.md").read_text() + (DOCS / "webhooks.md").read_text()
    exported = {family.name for family in Metrics().registry.collect()}
    undocumented = sorted(
        name for name in exported if f"`{name}`" not in pages and f"`{name}_total" not in pages
    )
    assert undocumented == []
