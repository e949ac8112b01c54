"""Fixtures of the CLI tests: one embedded server that minted its admin token file, and runners."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from amplify_auth_client.cli import main
from amplify_auth_client.testing import set_testing
from tests.support.server import QuickStartServer, clean_environment, quick_start_server

BIN = Path(sys.executable).parent
AUTH_CLI = str(BIN / "auth-cli")


#: A real server started as in the quick start, so it minted ``amplify_auth.admin-token``.
CLIServer = QuickStartServer


@pytest.fixture(scope="session")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CLIServer]:
    with quick_start_server(tmp_path_factory.mktemp("cli-server")) as server:
        yield server


@pytest.fixture(autouse=True)
def _instant_retries() -> Iterator[None]:
    # An unreachable server costs four attempts; in-process, none of them waits.
    with set_testing(True):
        yield


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(
    cli_server: CLIServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    """``cli("list", "--all")``: ``main()`` in this process, as the server's admin, captured."""
    monkeypatch.setenv("AUTH_URL", cli_server.url)
    monkeypatch.setenv("AUTH_ADMIN_TOKEN", cli_server.admin_token)

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def run_auth_cli(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
) -> Result:
    """The installed ``auth-cli`` script as a real process; no inherited AUTH_* variables."""
    environment = clean_environment()
    for name in ("AUTH_URL", "AUTH_SERVICE_URL", "AUTH_ADMIN_TOKEN", "NO_COLOR", "FORCE_COLOR"):
        environment.pop(name, None)
    environment.update(env or {})
    completed = subprocess.run(
        [AUTH_CLI, *args],
        cwd=cwd,
        env=environment,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


@dataclass
class Terminal:
    """A pseudo-terminal: ``stdin`` for the process, ``type()`` for what the user types."""

    controller: int
    stdin: int

    def type(self, text: str) -> None:
        os.write(self.controller, text.encode())


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    controller, follower = pty.openpty()
    try:
        yield Terminal(controller, follower)
    finally:
        os.close(controller)
        os.close(follower)


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    """Failed with ``code``: one line on stderr holding every fragment, no traceback, no stdout."""
    assert result.code == code, result
    assert result.out == "", result
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("auth-cli"), lines
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
