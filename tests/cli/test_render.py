"""Rich output matches its snapshots at a fixed width, colours only terminals; without rich,
the same results are plain aligned text."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from rich.console import Console

from amplify_auth_client import (
    AuditEntry,
    CreatedToken,
    RotatedToken,
    TokenInfo,
    UsageDay,
    token_is_well_formed,
)
from amplify_auth_client._cli import _plain, _render
from amplify_auth_client._cli._commands import TokenDetail
from tests.cli.conftest import AUTH_CLI, CLIServer
from tests.support.server import clean_environment

SNAPSHOTS = Path(__file__).parent / "snapshots"
_COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-9]|9[0-7])[0-9;]*m")
_ESCAPE = re.compile(r"\x1b\[")

CREATED = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
TOKENS = [
    TokenInfo("tok_0123456789abcdef", "admin (bootstrap)", ("admin",), "active", CREATED,
              None, None, "registered at start-up", None),
    TokenInfo("tok_readonly00000001", "readonly-token", ("read",), "active", CREATED,
              datetime(2026, 3, 1, 9, 30, tzinfo=UTC), None, None, None),
    TokenInfo("tok_expired000000002", "[red]not markup[/red]", ("read", "write"), "expired",
              CREATED, datetime(2025, 3, 2, 9, 30, tzinfo=UTC), None, None, None),
    TokenInfo("tok_revoked000000003", "orders-service", ("orders:read", "orders:write"),
              "revoked", CREATED, None, datetime(2025, 3, 5, 12, 0, tzinfo=UTC), None,
              {"team": "orders"}, last_used_at=datetime(2025, 3, 5, 11, 58, 3, tzinfo=UTC),
              usage=(UsageDay(date(2025, 3, 4), 1200), UsageDay(date(2025, 3, 5), 37))),
]  # fmt: skip


def recorded(draw) -> str:  # type: ignore[no-untyped-def]
    """What ``draw(console)`` prints on a 100-column console, as plain text."""
    console = Console(width=100, record=True, file=io.StringIO(), color_system=None)
    draw(console)
    return console.export_text()


def check_snapshot(name: str, text: str) -> None:
    """Compare with ``snapshots/NAME.txt``; set UPDATE_SNAPSHOTS=1 to rewrite it after a change."""
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_list_table_snapshot() -> None:
    check_snapshot("list", recorded(lambda c: _render.token_table(c, TOKENS, include_all=True)))


def test_info_snapshot() -> None:
    audit = (
        AuditEntry(2, datetime(2025, 3, 5, 12, 0, tzinfo=UTC), "tok_0123456789abcdef",
                   "admin (bootstrap)", "revoke", TOKENS[3].token_id,
                   {"revoked_at": "2025-03-05T12:00:00Z"}),
        AuditEntry(1, CREATED, "tok_0123456789abcdef", None, "create", TOKENS[3].token_id,
                   {"name": "orders-service", "scopes": ["orders:read", "orders:write"],
                    "expires_at": None}),
    )  # fmt: skip
    check_snapshot("info", recorded(lambda c: _render.detail(c, TokenDetail(TOKENS[3], audit))))


def test_created_snapshot() -> None:
    # Not a real token: its checksum fails, so it is no secret.
    token = CreatedToken("amp_live_" + "x" * 43, "tok_0123456789abcdef", "mytoken",
                         ("read", "write"), CREATED, None, None, None)  # fmt: skip
    check_snapshot("created", recorded(lambda c: _render.created(c, token)))


#: A rotation's answer: the successor, and the old token in its grace (not real tokens).
ROTATED = RotatedToken(
    "amp_live_" + "y" * 43, "tok_successor0000004", "orders-service",
    ("orders:read",), CREATED, datetime(2025, 6, 1, 9, 30, tzinfo=UTC), None, None,
    previous=TokenInfo(
        "tok_predecessor00005", "orders-service", ("orders:read",), "active", CREATED,
        datetime(2025, 3, 2, 9, 30, tzinfo=UTC), None, None, None,
        replaced_by="tok_successor0000004", finish_when_idle_seconds=900,
    ),
)  # fmt: skip


def test_rotated_snapshot() -> None:
    check_snapshot("rotated", recorded(lambda c: _render.created(c, ROTATED)))
    check_snapshot(
        "info-rotated", recorded(lambda c: _render.detail(c, TokenDetail(ROTATED.previous, ())))
    )


def test_empty_lists_say_so() -> None:
    assert recorded(lambda c: _render.token_table(c, [], include_all=False)) == (
        "No active tokens (`--all` shows every token).\n"
    )
    assert recorded(lambda c: _render.token_table(c, [], include_all=True)) == "No tokens.\n"


def run_at_terminal(server: CLIServer, *args: str, **env: str) -> bytes:
    """``auth-cli ARGS`` with a terminal as stdout; what it wrote there."""
    import pty

    controller, follower = pty.openpty()
    environment = clean_environment(
        {"AUTH_URL": server.url, "AUTH_ADMIN_TOKEN": server.admin_token, "TERM": "xterm", **env}
    )
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS"):
        if name not in env:
            environment.pop(name, None)
    with subprocess.Popen(
        [AUTH_CLI, *args], stdout=follower, stderr=subprocess.PIPE, env=environment
    ) as process:
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            output += chunk
        assert process.wait(timeout=30) == 0, process.stderr.read() if process.stderr else ""
    os.close(controller)
    return output


def test_colour_on_a_terminal_but_not_with_no_color(cli_server: CLIServer) -> None:
    assert _COLOUR.search(run_at_terminal(cli_server, "list").decode())
    assert not _COLOUR.search(run_at_terminal(cli_server, "list", NO_COLOR="1").decode())


def test_no_escape_codes_when_not_a_terminal(cli) -> None:
    cli("create", "plain", "--scopes", "read")
    for args in (("list", "--all"), ("create", "plain-2", "--scopes", "read")):
        result = cli(*args)
        assert result.code == 0, result
        assert not _ESCAPE.search(result.out)


def test_a_pipe_gets_one_line_per_token(cli) -> None:
    cli("create", "a-name-long-enough-to-wrap-at-eighty-columns-surely", "--scopes", "read")
    lines = cli("list").out.splitlines()
    assert any("a-name-long-enough-to-wrap-at-eighty-columns-surely" in line for line in lines)


_WITHOUT_RICH = """
import sys
sys.modules["rich"] = None  # as if the [cli] extra were not installed
from amplify_auth_client.cli import main
code = main(sys.argv[1:])
raise SystemExit(code)
"""


def without_rich(server: CLIServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_RICH, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_environment({"AUTH_URL": server.url, "AUTH_ADMIN_TOKEN": server.admin_token}),
    )


def test_without_rich_the_results_are_plain_aligned_text(cli_server: CLIServer) -> None:
    # The seed's base install has no [cli] extra: its commands must still work.
    created = without_rich(cli_server, "create", "plain-text", "--scopes", "read", "write")
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert lines[0] == "Token created: plain-text"
    assert token_is_well_formed(lines[1])
    assert lines[2] == "Shown only once: store it now. The server keeps only its hash."
    assert not _ESCAPE.search(created.stdout)
    listed = without_rich(cli_server, "list")
    assert listed.returncode == 0, listed.stderr
    header, rule, *rows = listed.stdout.splitlines()[1:]
    columns = ["id", "name", "scopes", "status", "created", "expires", "last", "used"]
    assert header.split() == columns
    assert set(rule.replace(" ", "")) == {"-"}
    ours = next(row for row in rows if "plain-text" in row)
    # Aligned: every column starts where its header does.
    assert ours.index("plain-text") == header.index("name")
    assert ours.index("read write") == header.index("scopes")


def test_plain_output_snapshots() -> None:
    audit = (
        AuditEntry(1, CREATED, "tok_0123456789abcdef", None, "create", TOKENS[3].token_id,
                   {"name": "orders-service", "expires_at": None}),
    )  # fmt: skip
    token = CreatedToken("amp_live_" + "x" * 43, "tok_0123456789abcdef", "mytoken",
                         ("read", "write"), CREATED, None, None, None)  # fmt: skip
    for name, draw in (
        ("plain-list", lambda out: _plain.token_table(out, TOKENS, include_all=True)),
        ("plain-info", lambda out: _plain.detail(out, TokenDetail(TOKENS[3], audit))),
        ("plain-created", lambda out: _plain.created(out, token)),
        ("plain-rotated", lambda out: _plain.created(out, ROTATED)),
    ):
        out = io.StringIO()
        draw(out)
        check_snapshot(name, out.getvalue())


def test_json_works_without_rich(cli_server: CLIServer) -> None:
    result = without_rich(cli_server, "--json", "list")
    assert result.returncode == 0, result.stderr
    assert "admin (bootstrap)" in result.stdout


@pytest.mark.parametrize("command", [("list",), ("--json", "list")])
def test_the_renderer_is_loaded_only_for_tables(
    cli_server: CLIServer, command: tuple[str, ...]
) -> None:
    # Our part only: httpx itself imports rich when its own CLI's extras are
    # installed, so "rich" in sys.modules would say nothing about this code.
    code = (
        "import sys\n"
        "from amplify_auth_client.cli import main\n"
        f"assert main({list(command)!r}) == 0\n"
        "print('amplify_auth_client._cli._render' in sys.modules, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_environment(
            {"AUTH_URL": cli_server.url, "AUTH_ADMIN_TOKEN": cli_server.admin_token}
        ),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == str(command[0] != "--json")
