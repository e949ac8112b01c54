"""revoke's question names what it would revoke: several ids, every filter given; with no
match there is nothing to ask. A closed pipe and a bug of ours each end quietly, in one line."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from amplify_auth_client._cli import _main
from amplify_auth_client._cli._errors import FAILED
from tests.cli.conftest import AUTH_CLI, CLIServer, Terminal, assert_one_line_error
from tests.cli.test_confirm import at_terminal, status
from tests.support.server import clean_environment

__all__ = ["at_terminal"]  # a fixture, used by name


def test_several_ids_are_asked_about_together(cli, at_terminal: Terminal) -> None:
    ids = [cli("--json", "create", f"pair-{i}", "--scopes", "read").json()["token_id"]
           for i in range(2)]  # fmt: skip
    at_terminal.type("n\n")
    result = cli("revoke", *ids)
    assert result.code == FAILED, result
    prompt, error = result.err.split("\n", 1)
    assert prompt == f"Revoke 2 tokens ({', '.join(ids)})? This cannot be undone. [y/N] "
    assert error == "auth-cli: error: not revoked: the tokens are unchanged\n"
    assert {status(cli, token_id) for token_id in ids} == {"active"}


def test_the_question_names_every_filter(cli, at_terminal: Terminal) -> None:
    scope = f"s{uuid.uuid4().hex[:8]}"
    token_id = cli("--json", "create", "soon", "--scopes", scope, "--ttl", "2").json()["token_id"]
    at_terminal.type("n\n")
    result = cli("revoke", "--scope", scope, "--expiring-within", "5")
    assert result.code == FAILED, result
    assert result.err.startswith(
        f"Revoke 1 active token holding {scope} and expiring within 5 days? "
        "This cannot be undone. [y/N] "
    )
    assert status(cli, token_id) == "active"


def test_no_match_means_nothing_to_ask(cli, at_terminal: Terminal) -> None:
    # Nothing typed: a question would wait, or read end of input as a no.
    result = cli("revoke", "--name", f"none-{uuid.uuid4().hex}")
    assert (result.code, result.err, result.out) == (0, "", "Revoked 0 tokens.\n")


@pytest.mark.parametrize("command", [("list",), ("--json", "list")])
def test_a_reader_that_went_away_ends_it_quietly(
    cli_server: CLIServer, command: tuple[str, ...]
) -> None:
    # `auth-cli list | head -1`: the pipe closes before the output is written.
    # (rich handles its own output's broken pipe; JSON is written by us.)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        completed = subprocess.run(
            [AUTH_CLI, *command],
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=60,
            env=clean_environment(
                {"AUTH_URL": cli_server.url, "AUTH_ADMIN_TOKEN": cli_server.admin_token}
            ),
        )
    finally:
        os.close(write_end)
    # No traceback, no "Exception ignored" from the exit's flush.
    assert (completed.returncode, completed.stderr) == (FAILED, "")


def test_a_bug_of_ours_is_one_line_that_asks_for_a_report(
    cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("the list broke\nover two lines")

    monkeypatch.setitem(_main.COMMANDS, "list", broken)
    assert_one_line_error(
        cli("list"),
        FAILED,
        "unexpected error, please report it: RuntimeError: the list broke over two lines",
    )
