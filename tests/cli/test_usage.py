"""auth-cli shows when each token was last used, and filters on it in whole days."""

from __future__ import annotations

import re

import pytest

from amplify_auth_client import AuthClient
from amplify_auth_client._cli._parser import build_parser
from tests.cli.conftest import CLIServer
from tests.support.waiting import wait_for


@pytest.mark.parametrize(
    ("argv", "days"),
    [
        (["list", "--unused-for", "90d"], 90),
        (["list", "--unused-for", "48h"], 2),
        (["list", "--unused-for", "30"], 30),
    ],
)
def test_usage_filters_take_whole_days(argv: list[str], days: int) -> None:
    assert build_parser().parse_args(argv).unused_for == days


def test_expiring_within_takes_a_duration_or_days_as_before() -> None:
    parser = build_parser()
    assert parser.parse_args(["list", "--expiring-within", "14d"]).expiring_within == 14
    assert parser.parse_args(["list", "--expiring-within", "14"]).expiring_within == 14
    assert parser.parse_args(["list", "--expiring-within", "0"]).expiring_within == 0


@pytest.mark.parametrize("value", ["12h", "0d", "0", "36h"])
def test_a_usage_filter_of_part_of_a_day_is_refused(cli, value: str) -> None:
    result = cli("list", "--unused-for", value)
    assert result.code == 2, result
    assert "--unused-for" in result.err


def test_list_shows_last_use_and_filters_unused_tokens(cli, cli_server: CLIServer) -> None:
    used = cli("--json", "create", "usage-used", "--scopes", "read").json()
    idle = cli("--json", "create", "usage-idle", "--scopes", "read").json()
    with AuthClient(cli_server.url, report_usage=False) as auth:
        assert auth.validate(used["token"])

    def last_used() -> object:
        return cli("--json", "info", used["token_id"]).json()["last_used_at"]

    wait_for(lambda: last_used() is not None)
    unused = {t["token_id"] for t in cli("--json", "list", "--unused-for", "1d").json()}
    assert idle["token_id"] in unused
    assert used["token_id"] not in unused
    listed = cli("list", "--name", "usage-").out
    assert "last used" in listed
    assert re.search(rf"{idle['token_id']}.*never\s+never", listed), listed
    info = cli("info", used["token_id"]).out
    assert "last used" in info
    assert re.search(r"uses, 30 days\s+1 \(\d{4}-\d\d-\d\d: 1\)", info), info
