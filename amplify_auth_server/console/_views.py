"""What the token list shows and filters on, each written once.

The template draws :data:`TOKEN_COLUMNS` and :data:`TOKEN_FILTERS` in order;
a column (owner, last used) or a filter (owner, unused) that a later feature
brings is one more entry here, plus its cell in ``_cells.html`` or its
parameter in the tokens page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final, Literal, get_args

from amplify_auth_client.contract import USAGE_DAYS, ListStatus
from amplify_auth_server.schemas import UsageDay


@dataclass(frozen=True, slots=True)
class Column:
    #: Which cell the template draws (a macro of ``_cells.html``).
    key: str
    heading: str


@dataclass(frozen=True, slots=True)
class Filter:
    #: The query parameter, as the API names it.
    key: str
    label: str
    kind: Literal["select", "text", "number"]
    options: tuple[str, ...] = ()
    hint: str = ""


#: What "Expiring soon" in the navigation means: the list filtered to tokens
#: expiring within this many days that are still used, used within the other
#: many (the days the server's token.expiring webhook also asks): a token
#: nobody uses needs neither an extension nor a rotation.
EXPIRING_DAYS: Final = 14
EXPIRING_USED_DAYS: Final = 7

TOKEN_COLUMNS: Final = (
    Column("name", "Name"),
    Column("status", "Status"),
    Column("owner", "Owner"),
    Column("scopes", "Scopes"),
    Column("created_at", "Created"),
    Column("expires_at", "Expires"),
    Column("last_used_at", "Last used"),
)
#: The list of what expires soon: the same, and each token's way to its
#: extend and rotate forms.
EXPIRING_COLUMNS: Final = (*TOKEN_COLUMNS, Column("actions", "Actions"))

TOKEN_FILTERS: Final = (
    Filter("status", "Status", "select", options=get_args(ListStatus)),
    Filter("name", "Name starts with", "text"),
    Filter("scope", "Scope", "text"),
    Filter("owner", "Owner", "text"),
    Filter("expires_within_days", "Expiring within (days)", "number"),
    Filter("unused_for_days", "Unused for (days)", "number", hint="never used counts as unused"),
    Filter("used_within_days", "Used within (days)", "number"),
)

AUDIT_FILTERS: Final = (
    Filter("action", "Action", "text", hint="create, revoke, extend..."),
    Filter("actor", "Actor (token id or system)", "text"),
    Filter("token", "Token id", "text"),
    Filter("since", "Since", "text", hint="ISO 8601 with zone, e.g. 2026-12-01T00:00:00Z"),
    Filter("until", "Until", "text", hint="ISO 8601 with zone"),
)


def every_day(usage: Iterable[UsageDay], today: date) -> list[tuple[date, int]]:
    """The last :data:`USAGE_DAYS` days to ``today``, oldest first, each with its uses
    (0 for a day the record leaves out): the chart's bars, one a day, so that
    where a bar stands says when."""
    counts = {day.day: day.count for day in usage}
    first = today - timedelta(days=USAGE_DAYS - 1)
    return [
        (day, counts.get(day, 0)) for day in (first + timedelta(days=i) for i in range(USAGE_DAYS))
    ]


def when(value: datetime | None) -> str:
    """A time as the console shows it: UTC, to the second."""
    return "never" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")
