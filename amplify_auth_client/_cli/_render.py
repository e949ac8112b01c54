"""``auth-cli``'s results drawn with rich; the only module that imports it.

Imported lazily, only without ``--json``, and only when rich is installed
(the ``[cli]`` extra): otherwise :mod:`._plain` draws the same rows
(:mod:`._views`) as aligned text. Each function writes one command's result
to a :class:`~rich.console.Console` it is given, so a test can record it at
a fixed width.

Colour follows rich's detection: none when the output is not a terminal,
none with ``NO_COLOR`` set, forced with ``FORCE_COLOR``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import IO, Any, Final

from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from amplify_auth_client._cli import _views as views
from amplify_auth_client._cli._commands import Revocations, TokenDetail
from amplify_auth_client._models import CreatedToken, TokenInfo

# Narrow by design: a header rule, no edges, so that the list fits 80 columns
# more often; a cell too narrow folds rather than cut (names and ids are data).
_TABLE: Final[dict[str, Any]] = {
    "box": box.SIMPLE_HEAD,
    "show_edge": False,
    "pad_edge": False,
    "title_justify": "left",
}
_PIPE_WIDTH: Final = 1000
_NO_WRAP: Final[dict[str, Any]] = {"no_wrap": True}
_WRAP: Final[dict[str, dict[str, Any]]] = {
    column: {"overflow": "fold"} for column in ("name", "scopes", "by", "details")
}
_STATUS_STYLES = {"active": "green", "expired": "yellow", "revoked": "red"}


def console(file: IO[str]) -> Console:
    """A console on ``file``; rich reads the terminal, ``NO_COLOR`` and ``COLUMNS`` itself.

    Output that is not a terminal (``auth-cli list | grep orders``) is not
    wrapped at rich's default 80 columns: one token per line is what a pipe
    wants. ``COLUMNS`` still sets a width when given.
    """
    # highlight=False: rich's automatic highlighting would colour ids and
    # dates at random, and make the output depend on its heuristics.
    out = Console(file=file, highlight=False, soft_wrap=False)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out.width = _PIPE_WIDTH
    return out


def _status(status: str) -> Text:
    return Text(status, style=_STATUS_STYLES.get(status, ""))


def _fields(rows: Sequence[tuple[str, str | Text]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in rows:
        # Text, not str: a str cell is rich markup, and a name like "[red]x" is data.
        grid.add_row(label, Text(value) if isinstance(value, str) else value)
    return grid


def _token_rows(token: TokenInfo) -> list[tuple[str, str | Text]]:
    return [
        (label, _status(value) if label == "status" else value)
        for label, value in views.token_fields(token)
    ]


def created(out: Console, token: CreatedToken) -> None:
    """The new token in a panel, with the warning that it is shown only this once."""
    secret = Text(token.token, style="bold")
    warning = Text(views.CREATED_WARNING, style="yellow")
    out.print(
        Panel(
            Group(secret, Text(""), warning),
            title=escape(views.created_title(token)),
            title_align="left",
            border_style="green",
            expand=False,
        )
    )
    out.print(_fields(views.created_fields(token)))


def token_table(
    out: Console,
    tokens: Sequence[TokenInfo],
    *,
    include_all: bool,
    next_cursor: str | None = None,
) -> None:
    """``list``: one row per token, and a line when more follow."""
    if not tokens:
        out.print(views.empty_list(include_all=include_all))
        return
    partial = next_cursor is not None
    title = views.list_title(tokens, include_all=include_all, partial=partial)
    table = Table(title=title, **_TABLE)
    for column in views.TOKEN_COLUMNS:
        # Names and scopes fold rather than cut: they are data.
        table.add_column(column, **_WRAP.get(column, _NO_WRAP))
    for token in tokens:
        cells = views.token_row(token)
        table.add_row(*(_status(c) if i == 3 else Text(c) for i, c in enumerate(cells)))
    out.print(table)
    line = views.more(next_cursor)
    if line is not None:
        # Whole, whatever the width: the cursor in it is copied as is.
        out.print(Text(line, style="yellow"), soft_wrap=True)


def detail(out: Console, detail: TokenDetail) -> None:
    """``info``: the token's fields, then its audit trail, newest first."""
    out.print(_fields(_token_rows(detail.token)))
    if not detail.audit:
        return
    trail = Table(title=views.AUDIT_TITLE, **_TABLE)
    for column in views.AUDIT_COLUMNS:
        trail.add_column(column, **_WRAP.get(column, _NO_WRAP))
    for row in views.audit_rows(detail):
        trail.add_row(*(Text(cell) for cell in row))
    out.print()
    out.print(trail)


def changed(out: Console, token: TokenInfo, verb: str) -> None:
    """``revoke`` and ``extend``: what the token is now."""
    out.print(Text(views.changed_line(token, verb)))
    out.print(_fields(_token_rows(token)))


def revocations(out: Console, result: Revocations) -> None:
    """``revoke`` of several tokens: what happened to each id."""
    for line in views.revocation_lines(result):
        out.print(Text(line))
