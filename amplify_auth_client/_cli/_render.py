"""Everything ``auth-cli`` shows with rich; the only module that imports it.

Imported lazily, and only without ``--json``, so that the SDK never pays for
rich and ``--json`` works on the slim install. Each function writes one
command's result to a :class:`~rich.console.Console` it is given, so a test
can record it at a fixed width.

Colour follows rich's detection: none when the output is not a terminal,
none with ``NO_COLOR`` set, forced with ``FORCE_COLOR``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO, Any, Final

from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from amplify_auth_client._cli._commands import TokenDetail
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


def _when(moment: datetime | None, *, never: str = "never", date_only: bool = False) -> str:
    if moment is None:
        return never
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d" if date_only else "%Y-%m-%d %H:%M:%S UTC")


def _detail(value: object) -> str:
    """An audit detail: times as the rest of the view shows them, the rest as JSON shows it."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        # Only the API's own times carry a zone; a name like "2025-01-01" is text.
        return _when(moment) if moment.tzinfo is not None else value
    return json.dumps(value)  # null and ["read"], not Python's None and ['read']


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
    rows: list[tuple[str, str | Text]] = [
        ("id", token.token_id),
        ("name", token.name),
        ("scopes", " ".join(token.scopes)),
        ("status", _status(token.status)),
        ("created", _when(token.created_at)),
        ("expires", _when(token.expires_at)),
    ]
    if token.revoked_at is not None:
        rows.append(("revoked", _when(token.revoked_at)))
    if token.description:
        rows.append(("description", token.description))
    for key, value in (token.metadata or {}).items():
        rows.append((f"metadata.{key}", value))
    return rows


def created(out: Console, token: CreatedToken) -> None:
    """The new token in a panel, with the warning that it is shown only this once."""
    secret = Text(token.token, style="bold")
    warning = Text(
        "Shown only once: store it now. The server keeps only its hash.",
        style="yellow",
    )
    out.print(
        Panel(
            Group(secret, Text(""), warning),
            title=f"Token created: {escape(token.name)}",
            title_align="left",
            border_style="green",
            expand=False,
        )
    )
    out.print(
        _fields(
            [
                ("id", token.token_id),
                ("scopes", " ".join(token.scopes)),
                ("created", _when(token.created_at)),
                ("expires", _when(token.expires_at)),
            ]
        )
    )


def token_table(out: Console, tokens: Sequence[TokenInfo], *, include_all: bool) -> None:
    """``list``: one row per token; dates only, ``info`` has the times."""
    if not tokens:
        out.print("No tokens." if include_all else "No active tokens (`--all` shows every token).")
        return
    table = Table(
        title=f"{'Tokens' if include_all else 'Active tokens'} ({len(tokens)})",
        **_TABLE,
    )
    table.add_column("id", no_wrap=True)
    table.add_column("name", overflow="fold")
    table.add_column("scopes", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("expires", no_wrap=True)
    for token in tokens:
        table.add_row(
            token.token_id,
            Text(token.name),
            Text(" ".join(token.scopes)),
            _status(token.status),
            _when(token.created_at, date_only=True),
            _when(token.expires_at, date_only=True),
        )
    out.print(table)


def detail(out: Console, detail: TokenDetail) -> None:
    """``info``: the token's fields, then its audit trail, newest first."""
    out.print(_fields(_token_rows(detail.token)))
    if not detail.audit:
        return
    trail = Table(title="Audit trail (newest first)", **_TABLE)
    trail.add_column("when", no_wrap=True)
    trail.add_column("action", no_wrap=True)
    trail.add_column("by", overflow="fold")
    trail.add_column("details", overflow="fold")
    for entry in detail.audit:
        details = ", ".join(f"{key}={_detail(value)}" for key, value in entry.details.items())
        by = entry.actor_name or entry.actor_id
        trail.add_row(_when(entry.at), Text(entry.action), Text(by), Text(details))
    out.print()
    out.print(trail)


def changed(out: Console, token: TokenInfo, verb: str) -> None:
    """``revoke`` and ``extend``: what the token is now."""
    out.print(f"{verb} {token.token_id} ({escape(token.name)})")
    out.print(_fields(_token_rows(token)))
