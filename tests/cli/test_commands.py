"""Each auth-cli command, run in-process against a real server, works in both output modes."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from amplify_auth_client import AuthClient, token_is_well_formed
from tests.cli.conftest import CLIServer, Result

_TOKEN = re.compile(r"amp_live_[A-Za-z0-9_-]{43}")


def created_id(result: Result) -> str:
    assert result.code == 0, result
    match = re.search(r"tok_[a-z0-9]{16}", result.out)
    assert match, result.out
    return match.group()


def test_create_shows_the_token_once_in_a_panel_with_a_warning(cli, cli_server: CLIServer) -> None:
    result = cli("create", "panel-token", "--scopes", "read", "write", "--ttl", "365")
    assert result.code == 0, result
    assert result.err == ""
    (raw,) = _TOKEN.findall(result.out)
    assert token_is_well_formed(raw)
    assert "Shown only once" in result.out
    assert "╭" in result.out  # the panel
    assert "read write" in result.out
    with AuthClient(cli_server.url) as auth:
        validation = auth.validate(raw, ["read", "write"])
    assert validation.valid
    assert validation.name == "panel-token"


def test_create_json_has_the_token_and_the_api_fields(cli) -> None:
    result = cli("--json", "create", "json-token", "--scopes", "read", "--ttl", "7")
    assert result.code == 0, result
    body = result.json()
    assert set(body) == {
        "token",
        "token_id",
        "name",
        "scopes",
        "created_at",
        "expires_at",
        "description",
        "metadata",
        "owner",
    }
    assert token_is_well_formed(body["token"])
    assert body["scopes"] == ["read"]
    created, expires = (datetime.fromisoformat(body[k]) for k in ("created_at", "expires_at"))
    assert expires - created == timedelta(days=7)


def test_create_without_ttl_never_expires(cli) -> None:
    body = cli("--json", "create", "endless", "--scopes", "read").json()
    assert body["expires_at"] is None
    assert "never" in cli("info", body["token_id"]).out


def test_list_shows_active_tokens_and_all_of_them_with_all(cli) -> None:
    kept = cli("--json", "create", "listed-kept", "--scopes", "read").json()["token_id"]
    gone = cli("--json", "create", "listed-gone", "--scopes", "read").json()["token_id"]
    assert cli("--json", "revoke", gone, "--yes").code == 0

    active = cli("--json", "list").json()
    assert kept in {t["token_id"] for t in active}
    assert gone not in {t["token_id"] for t in active}
    assert {t["status"] for t in active} == {"active"}
    everything = {t["token_id"]: t["status"] for t in cli("--json", "list", "--all").json()}
    assert everything[kept] == "active"
    assert everything[gone] == "revoked"

    table = cli("list")
    assert table.code == 0
    assert table.err == ""
    assert table.out.startswith("Active tokens (")
    for column in ("id", "name", "scopes", "status", "created", "expires"):
        assert column in table.out.splitlines()[1]
    assert kept in table.out
    assert gone not in table.out
    full = cli("list", "--all")
    assert full.out.startswith("Tokens (")
    assert gone in full.out
    assert "revoked" in full.out


def test_info_shows_details_status_and_audit_trail(cli) -> None:
    token_id = cli("--json", "create", "inspected", "--scopes", "read", "--ttl", "30").json()[
        "token_id"
    ]
    assert cli("--json", "extend", token_id, "--days", "5").code == 0

    body = cli("--json", "info", token_id).json()
    assert body["token_id"] == token_id
    assert body["status"] == "active"
    assert [entry["action"] for entry in body["audit"]] == ["extend", "create"]
    assert "token" not in body  # never the raw token outside create

    shown = cli("info", token_id)
    assert shown.code == 0, shown
    assert "active" in shown.out
    assert "Audit trail" in shown.out
    assert "extend" in shown.out
    assert "create" in shown.out
    assert _TOKEN.search(shown.out) is None


def test_revoke_with_yes_revokes_and_says_so(cli, cli_server: CLIServer) -> None:
    created = cli("--json", "create", "to-revoke", "--scopes", "read").json()
    result = cli("revoke", created["token_id"], "--yes")
    assert result.code == 0, result
    assert f"Revoked {created['token_id']}" in result.out
    assert "revoked" in result.out
    with AuthClient(cli_server.url) as auth:
        assert auth.validate(created["token"]).reason == "revoked"
    again = cli("--json", "revoke", created["token_id"], "-y")
    assert again.code == 0
    assert again.json()["status"] == "revoked"


def test_extend_pushes_the_expiry(cli) -> None:
    created = cli("--json", "create", "extended", "--scopes", "read", "--ttl", "10").json()
    before = datetime.fromisoformat(created["expires_at"])
    body = cli("--json", "extend", created["token_id"], "--days", "20").json()
    assert datetime.fromisoformat(body["expires_at"]) - before == timedelta(days=20)
    shown = cli("extend", created["token_id"], "--days", "1")
    assert shown.code == 0
    assert f"Extended {created['token_id']}" in shown.out


def test_global_options_work_after_the_command_too(cli, cli_server: CLIServer, monkeypatch) -> None:
    # Listed by a name of this test's own: a token other tests validate
    # changes (its last use is written every 5 s) between two listings.
    assert cli("create", "global-options", "--scopes", "read").code == 0
    monkeypatch.delenv("AUTH_URL")
    monkeypatch.delenv("AUTH_ADMIN_TOKEN")
    url, admin = cli_server.url, cli_server.admin_token
    before = cli("--auth-url", url, "--admin-token", admin, "--json", "list", "--name", "global-")
    after = cli("list", "--name", "global-", "--json", "--auth-url", url, "--admin-token", admin)
    assert before.code == after.code == 0
    assert [t["name"] for t in before.json()] == ["global-options"]
    assert before.json() == after.json()
    # An option given only before the command is not undone by the command's parser.
    mixed = cli("--json", "--auth-url", url, "list", "--name", "global-", "--admin-token", admin)
    assert mixed.json() == before.json()


def test_help_describes_every_option(cli) -> None:
    assert cli("--help").code == 0
    top = cli("--help").out
    for word in (
        "create",
        "list",
        "info",
        "revoke",
        "extend",
        "--auth-url",
        "--admin-token",
        "--json",
        "--version",
        "exit codes",
    ):
        assert word in top, word
    expected = {
        "create": ("NAME", "--scopes", "--ttl"),
        "list": ("--all",),
        "info": ("TOKEN_ID",),
        "revoke": ("TOKEN_ID", "--yes"),
        "extend": ("TOKEN_ID", "--days"),
    }
    for command, options in expected.items():
        text = cli(command, "--help").out
        for option in (*options, "--auth-url", "--admin-token", "--json"):
            assert option in text, (command, option)


def test_version(cli) -> None:
    from amplify_auth_client import __version__

    result = cli("--version")
    assert (result.code, result.out) == (0, f"auth-cli {__version__}\n")


def test_list_pages_and_says_when_more_follow(cli) -> None:
    ids = [
        cli("--json", "create", f"paged-{i}", "--scopes", "pages").json()["token_id"]
        for i in range(5)
    ]
    first = cli("list", "--scope", "pages", "--limit", "2")
    assert first.code == 0, first
    assert "more follow" in first.out
    cursor = re.search(r"--cursor=(\S+)", first.out)
    assert cursor is not None
    rest = cli("--json", "list", "--scope", "pages", "--limit", "10", f"--cursor={cursor[1]}")
    shown = re.findall(r"tok_[a-z0-9]{16}", first.out)
    # Newest first, each token once across the pages.
    assert shown + [t["token_id"] for t in rest.json()] == ids[::-1]
    json_first = cli("--json", "list", "--scope", "pages", "--limit", "2")
    assert len(json_first.json()) == 2
    assert "--cursor" in json_first.err
    assert cli("list", "--name", "PAGED-", "--limit", "1000").out.count("paged-") == 5
    assert cli("list", "--limit", "0").code == 2


def test_revoke_takes_several_ids_or_filters(cli, cli_server: CLIServer) -> None:
    ids = [
        cli("--json", "create", f"many-{i}", "--scopes", "many").json()["token_id"]
        for i in range(3)
    ]
    both = cli("revoke", ids[0], "--name", "many-", "--yes")
    assert both.code == 2
    assert "not both" in both.err
    assert cli("revoke", "--yes").code == 2  # neither: revoking everything needs a filter
    several = cli("revoke", ids[0], ids[1], "tok_zzzzzzzzzzzzzzzz", "--yes")
    assert several.code == 5  # one is no token; the others are revoked
    assert "Revoked 2" in several.out
    assert "No such token: tok_zzzzzzzzzzzzzzzz" in several.out
    by_filter = cli("--json", "revoke", "--name", "many-", "--scope", "many", "--yes")
    assert by_filter.code == 0, by_filter
    assert by_filter.json() == {"revoked_count": 1}
    with AuthClient(cli_server.url, admin_token=cli_server.admin_token) as auth:
        assert {auth.get_token(i).status for i in ids} == {"revoked"}


def test_owners_on_the_command_line_and_a_delegated_admin_token(
    cli, cli_server: CLIServer, monkeypatch
) -> None:
    made = cli(
        "--json", "create", "cli-team-admin", "--scopes", "tokens:manage", "read",
        "--ttl", "30", "--owner", "cli-team",
    )  # fmt: skip
    assert made.code == 0, made
    assert made.json()["owner"] == "cli-team"
    assert cli("create", "nobody", "--scopes", "tokens:manage").code == 2  # needs an owner
    assert cli("create", "bad", "--scopes", "read", "--owner", "Cli-Team").code == 2
    other = cli("--json", "create", "cli-other", "--scopes", "read", "--owner", "cli-other")
    other_id = other.json()["token_id"]

    monkeypatch.setenv("AUTH_ADMIN_TOKEN", made.json()["token"])
    mine = cli("--json", "create", "cli-team-svc", "--scopes", "read", "--ttl", "3")
    assert mine.code == 0, mine
    assert mine.json()["owner"] == "cli-team"
    info = cli("info", mine.json()["token_id"])
    assert re.search(r"owner\s+cli-team", info.out), info.out
    listed = {token["token_id"] for token in cli("--json", "list").json()}
    assert listed == {made.json()["token_id"], mine.json()["token_id"]}

    beyond = cli("create", "escalate", "--scopes", "admin", "--ttl", "3")
    assert beyond.code == 4
    assert "delegated" in beyond.err
    foreign = cli("revoke", other_id, "--yes")
    assert foreign.code == 5  # another owner's token: no such token
    assert cli("list", "--owner", "cli-other").code == 4
    revoked = cli("--json", "revoke", "--owner", "cli-team", "--name", "cli-team-svc", "--yes")
    assert revoked.json() == {"revoked_count": 1}

    monkeypatch.setenv("AUTH_ADMIN_TOKEN", cli_server.admin_token)
    assert [t["token_id"] for t in cli("--json", "list", "--owner", "cli-other").json()] == [
        other_id
    ]
    with AuthClient(cli_server.url, admin_token=cli_server.admin_token) as auth:
        assert auth.get_token(other_id).status == "active"
