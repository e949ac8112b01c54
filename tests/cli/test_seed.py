"""The seed README's auth-cli lines run verbatim as the installed script, against a real server."""

from __future__ import annotations

import re
import shlex

from tests.cli.conftest import CLIServer, Result, Terminal, run_auth_cli

# From the seed README's CLI section and issue 5, as written. <token_id> is filled in from `create`.
LINES = [
    "auth-cli create readonly-token --scopes read --ttl 365",
    "auth-cli create admin-token --scopes read write delete admin",
    "auth-cli --auth-url http://localhost:8000 create mytoken --scopes read write",
    "auth-cli list",
    "auth-cli list --all",
    "auth-cli info <token_id>",
    "auth-cli revoke <token_id>",
]
_ID = re.compile(r"tok_[a-z0-9]{16}")


def run_line(line: str, server: CLIServer, stdin: int | None = None) -> Result:
    """One seed line in the server's directory (its token file there, as in the quick start).

    The one liberty: ``http://localhost:8000`` becomes this server's port,
    since 8000 may be taken on the machine running the tests.
    """
    port = server.url.rpartition(":")[2]
    args = shlex.split(line.replace("localhost:8000", f"localhost:{port}"))
    assert args[0] == "auth-cli"
    env = {"AUTH_URL": server.url}
    if stdin is None:
        return run_auth_cli(*args[1:], cwd=server.directory, env=env)
    return run_auth_cli(*args[1:], cwd=server.directory, env=env, stdin=stdin)


def test_the_seed_lines_run_verbatim(cli_server: CLIServer, terminal: Terminal) -> None:
    created = {}
    for line in LINES[:3]:
        result = run_line(line, cli_server)
        assert result.code == 0, (line, result)
        assert "Shown only once" in result.out
        match = _ID.search(result.out)
        assert match, result.out
        created[line] = match.group()

    listed = run_line("auth-cli list", cli_server)
    assert listed.code == 0, listed
    for name in ("readonly-token", "admin-token", "mytoken"):
        assert name in listed.out

    token_id = created[LINES[0]]
    info = run_line(f"auth-cli info {token_id}", cli_server)
    assert info.code == 0, info
    assert "readonly-token" in info.out
    assert "active" in info.out

    # revoke asks first; at a terminal, the user answers yes.
    terminal.type("y\n")
    revoked = run_line(f"auth-cli revoke {token_id}", cli_server, stdin=terminal.stdin)
    assert revoked.code == 0, revoked
    assert "[y/N]" in revoked.err
    assert f"Revoked {token_id}" in revoked.out

    everything = run_line("auth-cli list --all", cli_server)
    assert everything.code == 0, everything
    assert token_id in everything.out
    assert "revoked" in everything.out
    assert token_id not in run_line("auth-cli list", cli_server).out
