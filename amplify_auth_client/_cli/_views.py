"""What each ``auth-cli`` command shows, as text and rows: shared by both renderers.

:mod:`._render` draws these with rich (panels, styled tables) when the
``[cli]`` extra is installed; :mod:`._plain` aligns them as plain text when
it is not. Either way the same rows, in the same order, with the same
words: only the drawing differs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from amplify_auth_client._cli._commands import Revocations, TokenDetail
from amplify_auth_client._models import AuditEntry, CreatedToken, RotatedToken, TokenInfo

CREATED_WARNING: Final = "Shown only once: store it now. The server keeps only its hash."
TOKEN_COLUMNS: Final = ("id", "name", "scopes", "status", "created", "expires", "last used")
AUDIT_COLUMNS: Final = ("when", "action", "by", "details")
AUDIT_TITLE: Final = "Audit trail (newest first)"


def when(moment: datetime | None, *, never: str = "never", date_only: bool = False) -> str:
    """A time as every view shows it: UTC, to the second (or the day, in lists)."""
    if moment is None:
        return never
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d" if date_only else "%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: int) -> str:
    """Seconds as the CLI takes durations: in the largest unit that holds them whole."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def detail_value(value: object) -> str:
    """An audit detail: times as the rest of the view shows them, the rest as JSON shows it."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        # Only the API's own times carry a zone; a name like "2025-01-01" is text.
        return when(moment) if moment.tzinfo is not None else value
    return json.dumps(value)  # null and ["read"], not Python's None and ['read']


def token_fields(token: TokenInfo) -> list[tuple[str, str]]:
    """``info``, ``revoke`` and ``extend``: every field of a token, one per row."""
    rows = [
        ("id", token.token_id),
        ("name", token.name),
        ("scopes", " ".join(token.scopes)),
        ("status", token.status),
        ("created", when(token.created_at)),
        ("expires", when(token.expires_at)),
    ]
    if token.owner is not None:
        rows.insert(2, ("owner", token.owner))
    if token.revoked_at is not None:
        rows.append(("revoked", when(token.revoked_at)))
    rows.append(("last used", when(token.last_used_at)))
    if token.usage:
        rows.append(("uses, 30 days", usage_line(token)))
    if token.replaced_by is not None:
        rows.append(("replaced by", token.replaced_by))
    if token.finish_when_idle_seconds is not None:
        rows.append(("finish when idle", duration(token.finish_when_idle_seconds)))
    if token.rotated_from is not None:
        rows.append(("rotated from", token.rotated_from))
    if token.description:
        rows.append(("description", token.description))
    for key, value in (token.metadata or {}).items():
        rows.append((f"metadata.{key}", value))
    return rows


def usage_line(token: TokenInfo) -> str:
    """``info``'s usage: the total over the last 30 days, then each day that had uses."""
    total = sum(day.count for day in token.usage)
    days = ", ".join(f"{day.day.isoformat()}: {day.count}" for day in token.usage)
    return f"{total} ({days})"


def created_title(token: CreatedToken) -> str:
    """The heading over a new secret: ``create``'s, or ``rotate``'s."""
    verb = "rotated" if isinstance(token, RotatedToken) else "created"
    return f"Token {verb}: {token.name}"


def created_fields(token: CreatedToken) -> list[tuple[str, str]]:
    """What ``create`` and ``rotate`` show under the secret (the owner, when it has one;
    for a rotation, the old token and until when it still works)."""
    owner = [] if token.owner is None else [("owner", token.owner)]
    rows = [
        ("id", token.token_id),
        *owner,
        ("scopes", " ".join(token.scopes)),
        ("created", when(token.created_at)),
        ("expires", when(token.expires_at)),
    ]
    if isinstance(token, RotatedToken):
        old = token.previous
        rows.append(("replaces", old.token_id))
        if old.status == "revoked":
            rows.append(("old token", "revoked now"))
        else:
            rows.append(("old token", "valid until " + when(old.expires_at)))
        if old.finish_when_idle_seconds is not None:
            rows.append(("finish when idle", duration(old.finish_when_idle_seconds)))
    return rows


def list_title(tokens: Sequence[TokenInfo], *, include_all: bool, partial: bool = False) -> str:
    count = f"{len(tokens)}, newest first, more follow" if partial else str(len(tokens))
    return f"{'Tokens' if include_all else 'Active tokens'} ({count})"


def more(next_cursor: str | None) -> str | None:
    """The line under a list that is not all there is.

    ``--cursor=`` and the cursor as one word: a cursor may begin with ``-``,
    which argparse would take for an option after a space.

    >>> more("-Xy1")
    'More tokens: narrow the filters, raise --limit, or --cursor=-Xy1'
    """
    if next_cursor is None:
        return None
    return f"More tokens: narrow the filters, raise --limit, or --cursor={next_cursor}"


def empty_list(*, include_all: bool) -> str:
    return "No tokens." if include_all else "No active tokens (`--all` shows every token)."


def token_row(token: TokenInfo) -> tuple[str, ...]:
    """One line of ``list``, in :data:`TOKEN_COLUMNS` order: dates only, ``info`` has times."""
    return (
        token.token_id,
        token.name,
        " ".join(token.scopes),
        token.status,
        when(token.created_at, date_only=True),
        when(token.expires_at, date_only=True),
        when(token.last_used_at, date_only=True),
    )


def audit_rows(detail: TokenDetail) -> list[tuple[str, ...]]:
    """The audit trail of ``info``, in :data:`AUDIT_COLUMNS` order, newest first."""
    return [_audit_row(entry) for entry in detail.audit]


def _audit_row(entry: AuditEntry) -> tuple[str, ...]:
    details = ", ".join(f"{key}={detail_value(value)}" for key, value in entry.details.items())
    return (when(entry.at), entry.action, entry.actor_name or entry.actor_id, details)


def changed_line(token: TokenInfo, verb: str) -> str:
    """The first line of ``revoke`` and ``extend``."""
    return f"{verb} {token.token_id} ({token.name})"


def revocation_lines(result: Revocations) -> list[str]:
    """What ``revoke`` of several ids, or by filters, says it did."""
    if result.outcome is None:
        return [f"Revoked {result.count} token{'s' if result.count != 1 else ''}."]
    lines = [f"Revoked {result.count}: {' '.join(result.outcome.revoked) or 'none'}"]
    if result.outcome.already_revoked:
        lines.append(f"Already revoked: {' '.join(result.outcome.already_revoked)}")
    if result.outcome.not_found:
        lines.append(f"No such token: {' '.join(result.outcome.not_found)}")
    return lines
