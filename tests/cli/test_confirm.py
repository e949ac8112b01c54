"""revoke asks on a terminal, revokes only on yes, refuses without a terminal; Ctrl-C is 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.cli.conftest import AUTH_CLI, CLIServer, Terminal
from tests.support.server import clean_environment


@pytest.fixture
def at_terminal(terminal: Terminal, monkeypatch: pytest.MonkeyPatch) -> Terminal:
    """This process's stdin is the terminal (pytest's own stdin refuses to be read)."""
    monkeypatch.setattr(sys, "stdin", os.fdopen(terminal.stdin, "r", closefd=False))
    return terminal


def status(cli, token_id: str) -> str:
    return str(cli("--json", "info", token_id).json()["status"])


@pytest.mark.parametrize("answer", ["n\n", "\n", "nope\n", "yes please\n"])
def test_anything_but_yes_leaves_the_token_alone(cli, at_terminal: Terminal, answer: str) -> None:
    token_id = cli("--json", "create", "kept", "--scopes", "read").json()["token_id"]
    at_terminal.type(answer)
    result = cli("revoke", token_id)
    assert result.code == 1, result
    prompt, error = result.err.split("\n", 1)
    assert prompt.startswith(f"Revoke {token_id} ('kept', scopes read, never expires)?")
    assert prompt.endswith("[y/N] ")
    assert error == f"auth-cli: error: not revoked: {token_id} is unchanged\n"
    assert result.out == ""
    assert status(cli, token_id) == "active"


@pytest.mark.parametrize("answer", ["y\n", "Y\n", "yes\n", " YES \n"])
def test_yes_revokes(cli, at_terminal: Terminal, answer: str) -> None:
    token_id = cli("--json", "create", "gone", "--scopes", "read").json()["token_id"]
    at_terminal.type(answer)
    result = cli("--json", "revoke", token_id)
    assert result.code == 0, result
    assert "[y/N]" in result.err
    assert result.json()["status"] == "revoked"  # the prompt stays off stdout


def test_end_of_input_is_no(cli, at_terminal: Terminal) -> None:
    token_id = cli("--json", "create", "eof", "--scopes", "read").json()["token_id"]
    at_terminal.type("\x04")  # Ctrl-D: end of input on a terminal
    result = cli("revoke", token_id)
    assert result.code == 1, result
    assert status(cli, token_id) == "active"


def test_an_already_revoked_token_is_not_asked_about(cli, at_terminal: Terminal) -> None:
    token_id = cli("--json", "create", "twice", "--scopes", "read").json()["token_id"]
    assert cli("revoke", token_id, "--yes").code == 0
    result = cli("revoke", token_id)
    assert result.code == 0, result
    assert result.err == ""


def test_without_a_terminal_it_refuses_instead_of_waiting(cli, cli_server: CLIServer) -> None:
    token_id = cli("--json", "create", "piped", "--scopes", "read").json()["token_id"]
    # A real process whose stdin is a pipe that never ends: it must not wait on it.
    with subprocess.Popen(
        [AUTH_CLI, "revoke", token_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_environment(
            {"AUTH_URL": cli_server.url, "AUTH_ADMIN_TOKEN": cli_server.admin_token}
        ),
    ) as process:
        out, err = process.communicate(timeout=30)  # stdin left open
    assert process.returncode == 2
    assert out == ""
    assert err == (
        "auth-cli: error: revoke asks for confirmation and stdin is not a terminal: pass --yes\n"
    )
    assert status(cli, token_id) == "active"


def test_ctrl_c_at_the_prompt_exits_130(cli, cli_server: CLIServer, terminal: Terminal) -> None:
    token_id = cli("--json", "create", "interrupted", "--scopes", "read").json()["token_id"]
    with subprocess.Popen(
        [AUTH_CLI, "revoke", token_id],
        stdin=terminal.stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_environment(
            {"AUTH_URL": cli_server.url, "AUTH_ADMIN_TOKEN": cli_server.admin_token}
        ),
    ) as process:
        assert process.stderr is not None
        seen = b""
        while b"[y/N] " not in seen:  # the prompt is the signal that it waits for us
            chunk = os.read(process.stderr.fileno(), 4096)
            assert chunk, seen
            seen += chunk
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert out == b""
    assert (seen + err).decode().endswith("\nauth-cli: error: interrupted\n")
    assert b"Traceback" not in err
    assert status(cli, token_id) == "active"


def test_the_prompt_goes_to_stderr_and_a_no_exits_1_from_the_script(
    cli, cli_server: CLIServer, terminal: Terminal
) -> None:
    token_id = cli("--json", "create", "scripted", "--scopes", "read").json()["token_id"]
    terminal.type("n\n")
    result = subprocess.run(
        [AUTH_CLI, "revoke", token_id],
        stdin=terminal.stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_environment(
            {"AUTH_URL": cli_server.url, "AUTH_ADMIN_TOKEN": cli_server.admin_token}
        ),
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "[y/N]" in result.stderr


def test_revoke_by_filter_asks_with_the_servers_count(cli, at_terminal: Terminal) -> None:
    ids = [
        cli("--json", "create", f"counted-{i}", "--scopes", "c").json()["token_id"]
        for i in range(3)
    ]
    at_terminal.type("n\n")
    declined = cli("revoke", "--name", "counted-")
    assert declined.code == 1, declined
    assert declined.err.startswith(
        "Revoke 3 active tokens whose name starts with 'counted-'? This cannot be undone. [y/N] "
    )
    assert {status(cli, token_id) for token_id in ids} == {"active"}
    at_terminal.type("y\n")
    done = cli("revoke", "--name", "counted-")
    assert done.code == 0, done
    assert done.out == "Revoked 3 tokens.\n"
    assert {status(cli, token_id) for token_id in ids} == {"revoked"}
