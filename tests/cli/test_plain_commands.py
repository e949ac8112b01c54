"""Without rich (no [cli] extra), every command's result is still plain, readable text:
empty lists, partial pages, revoke and extend, a revocation of several ids."""

from __future__ import annotations

import json
import uuid

from amplify_auth_client._cli._errors import NOT_FOUND
from tests.cli.conftest import CLIServer
from tests.cli.test_render import _ESCAPE, without_rich


def plain(server: CLIServer, *args: str, code: int = 0) -> list[str]:
    result = without_rich(server, *args)
    assert result.returncode == code, result.stderr
    assert not _ESCAPE.search(result.stdout)
    return result.stdout.splitlines()


def created(server: CLIServer, name: str, *options: str) -> str:
    lines = plain(server, "--json", "create", name, "--scopes", "read", *options)
    return str(json.loads("\n".join(lines))["token_id"])


def test_an_empty_list_says_so_and_how_to_see_more(cli_server: CLIServer) -> None:
    nothing = f"nothing-{uuid.uuid4().hex}"
    assert plain(cli_server, "list", "--name", nothing) == [
        "No active tokens (`--all` shows every token)."
    ]
    assert plain(cli_server, "list", "--all", "--name", nothing) == ["No tokens."]


def test_a_partial_list_says_where_the_rest_is(cli_server: CLIServer) -> None:
    prefix = f"paged-{uuid.uuid4().hex[:8]}"
    first_id, second_id = created(cli_server, f"{prefix}-a"), created(cli_server, f"{prefix}-b")
    page = plain(cli_server, "list", "--name", prefix, "--limit", "1")
    assert page[0] == "Active tokens (1, newest first, more follow)"
    assert second_id in page[3]
    more = page[-1]
    assert more.startswith("More tokens: narrow the filters, raise --limit, or --cursor=")
    # As printed, one word: a cursor may begin with "-" (it did, and argparse
    # took it for an option when the hint put a space before it).
    cursor = more.rsplit(" ", 1)[1]
    rest = plain(cli_server, "list", "--name", prefix, "--limit", "1", cursor)
    assert rest[0] == "Active tokens (1)"
    assert first_id in rest[3]


def test_extend_and_revoke_say_what_the_token_is_now(cli_server: CLIServer) -> None:
    token_id = created(cli_server, "plain-changed", "--ttl", "1")
    extended = plain(cli_server, "extend", token_id, "--days", "2")
    assert extended[0] == f"Extended {token_id} (plain-changed)"
    assert any(line.split()[:2] == ["status", "active"] for line in extended[1:])
    revoked = plain(cli_server, "revoke", "--yes", token_id)
    assert revoked[0] == f"Revoked {token_id} (plain-changed)"
    assert any(line.split()[:2] == ["status", "revoked"] for line in revoked[1:])


def test_a_revocation_of_several_ids_accounts_for_each(cli_server: CLIServer) -> None:
    before, now = created(cli_server, "plain-before"), created(cli_server, "plain-now")
    plain(cli_server, "revoke", "--yes", before)
    unknown = "tok_zzzzzzzzzzzzzzzz"
    # One id of no token: the others are revoked, and the exit code says one was not.
    lines = plain(cli_server, "revoke", "--yes", before, now, unknown, code=NOT_FOUND)
    assert lines == [f"Revoked 1: {now}", f"Already revoked: {before}", f"No such token: {unknown}"]


def test_a_cursor_that_begins_with_a_dash_is_read_as_printed() -> None:
    from amplify_auth_client._cli._parser import build_parser
    from amplify_auth_client._cli._views import more

    hint = more("-Xy1_z")
    assert hint is not None
    printed = hint.rsplit(" ", 1)[1]
    assert build_parser().parse_args(["list", printed]).cursor == "-Xy1_z"
