"""``auth-cli rotate``: the new secret shown once, the old token's deadline, durations read
once for every option that takes one, and the errors of a rotation that cannot be."""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta
from typing import Any

import pytest

from amplify_auth_client import AuthClient
from amplify_auth_client._cli._parser import build_parser, duration
from amplify_auth_client._cli._views import duration as shown
from tests.cli.conftest import CLIServer, Result, assert_one_line_error
from tests.cli.test_plain_commands import created, plain

_TOKEN = re.compile(r"amp_live_[A-Za-z0-9_-]{43}")


def made(cli: Any, name: str, *options: str) -> dict[str, str]:
    result: Result = cli("--json", "create", name, "--scopes", "read", *options)
    assert result.code == 0, result
    body: dict[str, str] = result.json()
    return body


@pytest.mark.parametrize(
    ("text", "bare", "seconds"),
    [("30s", "s", 30), ("15m", "s", 900), ("24h", "s", 86400), ("7d", "s", 604800),
     ("45", "s", 45), ("3", "d", 259200), ("0", "s", 0)],
)  # fmt: skip
def test_durations_are_read_in_one_place(text: str, bare: str, seconds: int) -> None:
    assert duration(text, bare=bare) == seconds


@pytest.mark.parametrize("text", ["", "1.5h", "-3s", "15 m", "1w", "h", "10M", "1e3"])
def test_what_is_no_duration_is_none(text: str) -> None:
    assert duration(text, bare="s") is None


@pytest.mark.parametrize(("seconds", "text"), [(900, "15m"), (86400, "1d"), (90, "90s"), (0, "0s")])
def test_durations_are_shown_as_they_are_typed(seconds: int, text: str) -> None:
    assert shown(seconds) == text
    assert duration(text, bare="s") == seconds


def test_every_duration_option_takes_units() -> None:
    parser = build_parser()
    parse = parser.parse_args
    assert parse(["create", "x", "--scopes", "r", "--ttl", "2d"]).ttl == 2
    assert parse(["create", "x", "--scopes", "r", "--ttl", "48h"]).ttl == 2
    assert parse(["create", "x", "--scopes", "r", "--ttl", "30"]).ttl == 30
    assert parse(["extend", "tok_0123456789abcdef", "--days", "1d"]).days == 1
    assert parse(["list", "--expiring-within", "14d"]).expiring_within == 14
    rotation = parse(
        ["rotate", "tok_0123456789abcdef", "--grace", "2h", "--finish-when-idle", "15m"]
    )
    assert (rotation.grace, rotation.finish_when_idle) == (7200, 900)
    assert parse(["rotate", "tok_0123456789abcdef"]).grace == 86400
    assert isinstance(parser, argparse.ArgumentParser)


def test_rotate_shows_the_new_secret_once_and_the_old_tokens_deadline(
    cli, cli_server: CLIServer
) -> None:
    old = made(cli, "rolling-cli", "--ttl", "10")
    result = cli("rotate", old["token_id"], "--grace", "1h", "--finish-when-idle", "15m")
    assert result.code == 0, result
    (raw,) = _TOKEN.findall(result.out)
    assert raw != old["token"]
    assert "Token rotated: rolling-cli" in result.out
    assert "Shown only once" in result.out
    assert old["token_id"] in result.out
    assert "valid until" in result.out
    assert "15m" in result.out
    with AuthClient(cli_server.url) as auth:
        answer = auth.validate(old["token"])
        assert answer.valid
        assert answer.replaced_by is not None
        assert answer.replaced_by in result.out
        assert auth.validate(raw).valid
    info = cli("info", old["token_id"])
    assert "replaced by" in info.out
    assert answer.replaced_by in info.out
    assert "rotate" in info.out  # the audit trail


def test_rotate_json_is_the_apis_answer(cli) -> None:
    old = made(cli, "rolling-json", "--ttl", "3")
    body = cli("--json", "rotate", old["token_id"], "--grace", "30s").json()
    assert body["rotated_from"] == old["token_id"]
    assert body["previous"]["replaced_by"] == body["token_id"]
    assert body["previous"]["status"] == "active"
    deadline = datetime.fromisoformat(body["previous"]["expires_at"])
    assert deadline - datetime.fromisoformat(body["created_at"]) == timedelta(seconds=30)
    lifetime = datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(
        body["created_at"]
    )
    assert lifetime == timedelta(days=3)


def test_a_grace_of_zero_says_the_old_token_is_revoked(cli) -> None:
    old = made(cli, "rolling-now")
    result = cli("rotate", old["token_id"], "--grace", "0")
    assert result.code == 0, result
    assert "revoked now" in result.out


def test_rotating_twice_is_a_conflict(cli) -> None:
    old = made(cli, "rolling-twice")
    assert cli("rotate", old["token_id"]).code == 0
    assert_one_line_error(cli("rotate", old["token_id"]), 1, "already rotated")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (("--grace", "soon"), "not a duration"),
        (("--grace", "31d"), "0s to 2592000s"),
        (("--finish-when-idle", "1m"), "120s to 2592000s"),
        (("--grace", "2m", "--finish-when-idle", "3m"), "finish_when_idle_seconds"),
    ],
)
def test_bad_durations_exit_2(cli, options: tuple[str, ...], fragment: str) -> None:
    old = made(cli, "rolling-bad")
    assert_one_line_error(cli("rotate", old["token_id"], *options), 2, fragment)


def test_an_unknown_id_exits_5(cli) -> None:
    assert_one_line_error(cli("rotate", "tok_zzzzzzzzzzzzzzzz"), 5)


def test_without_rich_a_rotation_is_plain_text(cli_server: CLIServer) -> None:
    token_id = created(cli_server, "plain-rotated", "--ttl", "1")
    lines = plain(cli_server, "rotate", token_id, "--grace", "10m")
    assert lines[0] == "Token rotated: plain-rotated"
    assert _TOKEN.fullmatch(lines[1])
    assert any(line.startswith("replaces") and token_id in line for line in lines)
    assert any(line.startswith("old token") and "valid until" in line for line in lines)
