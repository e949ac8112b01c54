"""Every failure is one line on stderr and a documented exit code; never a traceback or secret."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from amplify_auth_client import generate_token
from amplify_auth_client._cli import _errors, _main
from amplify_auth_client._cli._parser import build_parser
from tests.cli.conftest import CLIServer, assert_one_line_error, run_auth_cli
from tests.support.services import free_port

CLI_PAGE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_exit_codes_are_the_documented_ones() -> None:
    assert (
        _errors.OK,
        _errors.FAILED,
        _errors.USAGE,
        _errors.UNAVAILABLE,
        _errors.NOT_ALLOWED,
        _errors.NOT_FOUND,
        _errors.INTERRUPTED,
    ) == (0, 1, 2, 3, 4, 5, 130)


def test_every_exit_code_is_in_the_docs_and_the_help() -> None:
    codes = {
        value for name, value in vars(_errors).items() if name.isupper() and type(value) is int
    }
    documented = re.findall(r"^\| `(\d+)` \|", CLI_PAGE.read_text(encoding="utf-8"), re.MULTILINE)
    assert sorted(map(int, documented)) == sorted(codes)
    epilog = build_parser().epilog or ""
    assert sorted(map(int, re.findall(r"(\d+) [a-z]", epilog))) == sorted(codes)


@pytest.mark.parametrize("mode", [(), ("--json",)], ids=["rich", "json"])
def test_unreachable_server_exits_3(cli, mode: tuple[str, ...]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli(*mode, "--auth-url", url, "list")
    assert_one_line_error(result, 3, "cannot reach the auth service", url, "--auth-url")


def test_credentials_and_query_of_the_url_stay_out_of_errors(cli) -> None:
    port = free_port()
    result = cli("--auth-url", f"http://user:s3cret@127.0.0.1:{port}/?key=k3y#frag", "list")
    assert_one_line_error(result, 3, f"cannot reach the auth service at http://127.0.0.1:{port}/ ")
    for secret in ("user", "s3cret", "k3y", "frag"):
        assert secret not in result.err


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("localhost:8000", "--auth-url must start with http:// or https://"),
        ("ftp://auth", "--auth-url must start with http:// or https://"),
        ("http://", "--auth-url is not a URL with a host"),
        ("http://[::1", "--auth-url is not a URL with a host"),
    ],
)
def test_a_bad_url_is_a_usage_error_before_any_admin_token_is_looked_for(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, fragment: str
) -> None:
    monkeypatch.delenv("AUTH_ADMIN_TOKEN")
    monkeypatch.chdir(tmp_path)  # no token file either: the URL is what is wrong
    assert_one_line_error(cli("--auth-url", url, "list"), 2, fragment)
    monkeypatch.setenv("AUTH_URL", url)
    assert_one_line_error(cli("list"), 2, fragment)


def test_a_message_over_several_lines_is_printed_on_one(capsys: pytest.CaptureFixture[str]) -> None:
    _main._fail("the server said:\nsomething\r\nlong")
    assert capsys.readouterr().err == "auth-cli: error: the server said: something long\n"


def test_a_url_that_is_not_the_auth_api_exits_3(cli, cli_server: CLIServer) -> None:
    url = cli_server.url + "/nowhere"
    result = cli("--auth-url", url, "--json", "list")
    assert_one_line_error(result, 3, f"the server at {url} has no auth API there", "--auth-url")


def test_unknown_admin_token_exits_4(cli) -> None:
    result = cli("--admin-token", generate_token(), "list")
    assert_one_line_error(result, 4, "HTTP 401", "admin token from --admin-token")


def test_non_admin_token_exits_4(cli) -> None:
    reader = cli("--json", "create", "just-a-reader", "--scopes", "read").json()["token"]
    result = cli("--admin-token", reader, "list")
    assert_one_line_error(result, 4, "HTTP 403", "admin scope")
    assert reader not in result.err


@pytest.mark.parametrize("mode", [(), ("--json",)], ids=["rich", "json"])
def test_unknown_id_exits_5(cli, mode: tuple[str, ...]) -> None:
    for command in (("info",), ("revoke", "--yes"), ("extend", "--days", "3")):
        result = cli(*mode, command[0], "tok_0000000000000000", *command[1:])
        assert_one_line_error(result, 5, "tok_0000000000000000", "HTTP 404", "list --all")


def test_malformed_id_exits_2_and_a_raw_token_is_not_echoed(cli) -> None:
    assert_one_line_error(cli("info", "nope"), 2, "tok_")
    raw = generate_token()
    result = cli("info", raw)
    assert_one_line_error(result, 2, "raw token, not a token id")
    assert raw not in result.err


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--scopes", "read", "bad scope!"), ("--scopes 'bad scope!'", "HTTP 422")),
        (("--scopes", "-nope"), ("--scopes",)),  # looks like an option: refused by argparse
        (("--scopes",), ("--scopes",)),
        ((), ("--scopes",)),  # required
    ],
    ids=["server-refuses-scope", "dash-scope", "no-scope-values", "no-scopes"],
)
def test_invalid_scopes_exit_2(cli, args: tuple[str, ...], fragments: tuple[str, ...]) -> None:
    assert_one_line_error(cli("create", "bad-scopes", *args), 2, *fragments)


@pytest.mark.parametrize(
    ("ttl", "fragment"),
    [
        ("0", "1 or more"),
        ("-3", "--ttl"),
        ("soon", "not a whole number of days"),
        ("1.5", "not a whole number of days"),
        ("99999", "--ttl: Input should be less than or equal to 36500"),
    ],
)
def test_invalid_ttl_exits_2(cli, ttl: str, fragment: str) -> None:
    result = cli("create", "bad-ttl", "--scopes", "read", "--ttl", ttl)
    assert_one_line_error(result, 2, fragment)


def test_invalid_days_exit_2(cli) -> None:
    token_id = cli("--json", "create", "bad-days", "--scopes", "read", "--ttl", "3").json()[
        "token_id"
    ]
    assert_one_line_error(cli("extend", token_id, "--days", "0"), 2, "--days")
    assert_one_line_error(cli("extend", token_id), 2, "--days")


def test_extending_a_revoked_or_endless_token_exits_1(cli) -> None:
    endless = cli("--json", "create", "endless-ext", "--scopes", "read").json()["token_id"]
    assert_one_line_error(cli("extend", endless, "--days", "3"), 1, "never expires", "HTTP 409")
    revoked = cli("--json", "create", "revoked-ext", "--scopes", "read", "--ttl", "3").json()
    assert cli("revoke", revoked["token_id"], "--yes").code == 0
    assert_one_line_error(
        cli("extend", revoked["token_id"], "--days", "3"), 1, "revoked", "HTTP 409"
    )


def test_unknown_command_and_option_exit_2(cli) -> None:
    assert_one_line_error(cli("delete", "tok_0000000000000000"), 2, "invalid choice")
    assert_one_line_error(cli("list", "--everything"), 2, "--everything")
    assert_one_line_error(cli(), 2, "COMMAND")


def test_a_url_without_scheme_exits_2(cli) -> None:
    result = cli("--auth-url", "localhost:8000", "--admin-token", generate_token(), "list")
    assert_one_line_error(result, 2, "--auth-url must start with http:// or https://")


def test_no_admin_token_anywhere_exits_4(cli, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("AUTH_ADMIN_TOKEN")
    monkeypatch.chdir(tmp_path)  # no token file here
    result = cli("list")
    assert_one_line_error(result, 4, "no admin token", "amplify_auth.admin-token", "not found")


def test_errors_from_the_installed_script_are_one_line_too(cli_server: CLIServer, tmp_path) -> None:
    env = {"AUTH_URL": cli_server.url, "AUTH_ADMIN_TOKEN": cli_server.admin_token}
    assert_one_line_error(run_auth_cli("info", "tok_0000000000000000", cwd=tmp_path, env=env), 5)
    assert_one_line_error(
        run_auth_cli("create", "x", "--scopes", "read", "--ttl", "0", cwd=tmp_path, env=env), 2
    )
    unreachable = {
        "AUTH_URL": f"http://127.0.0.1:{free_port()}",
        "AUTH_ADMIN_TOKEN": generate_token(),
    }
    # Also: the SDK's per-attempt warnings stay off stderr.
    assert_one_line_error(run_auth_cli("list", cwd=tmp_path, env=unreachable), 3)


def test_an_unusable_admin_token_is_refused_without_echoing_it(cli) -> None:
    result = cli("--admin-token", "s3cret with spaces", "list")
    assert_one_line_error(result, 2, "the admin token")
    assert "s3cret" not in result.err


def test_the_error_lines_shown_in_the_docs_are_the_ones_printed(cli) -> None:
    # docs/cli.md runs these three commands in a bash block (exit codes only),
    # then shows their stderr as a sample: that sample must stay true.
    after = CLI_PAGE.read_text(encoding="utf-8").split("and the lines they print on stderr:", 1)[1]
    sample = after.split("```text\n", 1)[1].split("```", 1)[0]
    commands = [
        ("info", "tok_0000000000000000"),
        ("create", "broken", "--scopes", "not a scope"),
        ("--auth-url", "http://127.0.0.1:9", "list"),
    ]
    assert "".join(cli(*command).err for command in commands) == sample
