"""``auth-cli``'s results as plain, aligned text: what the base install prints.

The seed's ``pip install`` then ``auth-cli create ...`` has no ``[cli]``
extra, so rich may be absent; the CLI still shows every result, with the
same rows as :mod:`._render` (both draw :mod:`._views`), only without
colours, panels or wrapping. Decided so, rather than rich in the base
install: every service embeds the base install, and rich with its own
dependencies would weigh on each of them for a command line few of them run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Final

from amplify_auth_client._cli import _views as views
from amplify_auth_client._cli._commands import Revocations, TokenDetail
from amplify_auth_client._models import CreatedToken, TokenInfo

_GAP: Final = "  "


def console(file: IO[str]) -> IO[str]:
    """The output itself: plain text needs no console object."""
    return file


def _fields(out: IO[str], rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        out.write(f"{label.ljust(width)}{_GAP}{value}\n")


def _table(out: IO[str], title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(columns, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return _GAP.join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    out.write(f"{title}\n{line(columns).rstrip()}\n")
    out.write(_GAP.join("-" * width for width in widths) + "\n")
    for row in rows:
        out.write(line(row).rstrip() + "\n")


def created(out: IO[str], token: CreatedToken) -> None:
    """The new token on a line of its own, with the warning that it is shown only this once."""
    out.write(f"{views.created_title(token)}\n{token.token}\n{views.CREATED_WARNING}\n\n")
    _fields(out, views.created_fields(token))


def token_table(
    out: IO[str],
    tokens: Sequence[TokenInfo],
    *,
    include_all: bool,
    next_cursor: str | None = None,
) -> None:
    """``list``: one line per token, and a line when more follow."""
    if not tokens:
        out.write(views.empty_list(include_all=include_all) + "\n")
        return
    title = views.list_title(tokens, include_all=include_all, partial=next_cursor is not None)
    _table(out, title, views.TOKEN_COLUMNS, [views.token_row(token) for token in tokens])
    line = views.more(next_cursor)
    if line is not None:
        out.write(line + "\n")


def detail(out: IO[str], detail: TokenDetail) -> None:
    """``info``: the token's fields, then its audit trail, newest first."""
    _fields(out, views.token_fields(detail.token))
    if detail.audit:
        out.write("\n")
        _table(out, views.AUDIT_TITLE, views.AUDIT_COLUMNS, views.audit_rows(detail))


def changed(out: IO[str], token: TokenInfo, verb: str) -> None:
    """``revoke`` and ``extend``: what the token is now."""
    out.write(views.changed_line(token, verb) + "\n")
    _fields(out, views.token_fields(token))


def revocations(out: IO[str], result: Revocations) -> None:
    """``revoke`` of several tokens: what happened to each id."""
    for line in views.revocation_lines(result):
        out.write(line + "\n")
