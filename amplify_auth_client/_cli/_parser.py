"""``auth-cli``'s command line, with argparse: the seed's syntax, every option described.

The global options (``--auth-url``, ``--admin-token``, ``--json``) are
accepted before the command, as the seed writes them, and after it too
(``auth-cli list --json``), since that is where people add them to a line
they have already typed. They are declared once on the main parser and
again on each command's, there with ``default=SUPPRESS``: an option left out
after the command must not overwrite the one given before it.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, Final, NoReturn

from amplify_auth_client._cli._errors import USAGE
from amplify_auth_client._cli._settings import DEFAULT_AUTH_URL
from amplify_auth_client._version import __version__
from amplify_auth_client.contract import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_PAGE_SIZE,
    MAX_GRACE_SECONDS,
    MAX_OWNER_LENGTH,
    MAX_PAGE_SIZE,
    MAX_TTL_DAYS,
    MIN_FINISH_WHEN_IDLE_SECONDS,
    is_owner,
)

PROG = "auth-cli"


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, pointing at the help, instead of argparse's usage dump."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(USAGE)


#: Seconds in each unit a duration may be written in.
UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION: Final = re.compile(r"([0-9]{1,9})([smhd]?)")
_UNIT_NAMES: Final = {"s": "seconds", "d": "days"}


def duration(text: str, *, bare: str) -> int | None:
    """The seconds ``text`` says (``30s``, ``15m``, ``24h``, ``7d``; a bare number is in
    the unit ``bare``), or None if it is no duration. The one reader of every
    duration the CLI takes."""
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    return int(match[1]) * UNITS[match[2] or bare]


def _seconds(text: str, low: int, high: int) -> int:
    """A duration in seconds (a bare number is seconds), from ``low`` to ``high``."""
    seconds = duration(text, bare="s")
    if seconds is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: a whole number and a unit, such as 30s, 15m, 24h or 7d"
        )
    if not low <= seconds <= high:
        raise argparse.ArgumentTypeError(
            f"{text!r}: must be {low}s to {high}s ({high // UNITS['d']}d)"
        )
    return seconds


def _whole_days(text: str) -> int:
    """A duration of whole days (a bare number is days: ``30``, ``30d``, ``48h``)."""
    seconds = duration(text, bare="d")
    if seconds is None or seconds % UNITS["d"]:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of days (write 30, or a duration such as 30d or 48h)"
        )
    return seconds // UNITS["d"]


def _days(text: str) -> int:
    """Whole days, at least 1: argparse's ``type=`` for ``--ttl`` and ``--days``."""
    days = _whole_days(text)
    if days < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of days must be 1 or more")
    return days


def _whole(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of {what}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text!r}: {what} must be {low} to {high}")
    return value


def _days_or_zero(text: str) -> int:
    """Whole days, 0 or more: ``--expiring-within``."""
    days = _whole_days(text)
    if days > MAX_TTL_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r}: days must be 0 to {MAX_TTL_DAYS}")
    return days


def _grace(text: str) -> int:
    """``rotate --grace``: 0 to 30 days, in seconds."""
    return _seconds(text, 0, MAX_GRACE_SECONDS)


def _idle(text: str) -> int:
    """``rotate --finish-when-idle``: 2 minutes to 30 days, in seconds."""
    return _seconds(text, MIN_FINISH_WHEN_IDLE_SECONDS, MAX_GRACE_SECONDS)


def _usage_days(text: str) -> int:
    """``--unused-for`` and ``--used-within``: whole days, 1 or more."""
    days = _days(text)
    if days > MAX_TTL_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r}: days must be 1 to {MAX_TTL_DAYS}")
    return days


def _owner(text: str) -> str:
    """An owner, as the contract has it: refused here, before any request."""
    if not is_owner(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an owner: 1 to {MAX_OWNER_LENGTH} lowercase letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    return text


def _page_size(text: str) -> int:
    return _whole(text, 1, MAX_PAGE_SIZE, "rows")


def _global_options(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    # After the command, an absent option must leave the earlier value alone.
    unset: Any = argparse.SUPPRESS if after_command else None
    group = parser.add_argument_group("connection and output (also before the command)")
    group.add_argument(
        "--auth-url",
        metavar="URL",
        help=f"the auth server (default: env AUTH_URL, else AUTH_SERVICE_URL, else "
        f"{DEFAULT_AUTH_URL})",
        default=unset,
    )
    group.add_argument(
        "--admin-token",
        metavar="TOKEN",
        help="an admin token (default: env AUTH_ADMIN_TOKEN, else the amplify_auth.admin-token "
        "file beside a local embedded server's database); prefer the variable: options "
        "show in the process list",
        default=unset,
    )
    group.add_argument(
        "--json",
        action="store_true",
        help="print JSON for scripts instead of tables and panels",
        default=unset if after_command else False,
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; ``auth-cli --help`` and each ``COMMAND --help`` show it."""
    parser = _Parser(
        prog=PROG,
        description="Manage AMPLIfy Auth tokens: create, list, inspect, revoke, extend, rotate.",
        epilog="exit codes: 0 done, 1 not done (declined, conflict, other), 2 usage, "
        "3 auth service unavailable, 4 admin token missing or refused, 5 no such token, "
        "130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, after_command=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        _global_options(sub, after_command=True)
        return sub

    create = command("create", "Create a token and show its secret, once.")
    create.add_argument("name", metavar="NAME", help="what the token is for, e.g. orders-service")
    create.add_argument(
        "--scopes",
        nargs="+",
        required=True,
        metavar="SCOPE",
        help="one or more scopes, space-separated: --scopes read write",
    )
    create.add_argument(
        "--ttl",
        type=_days,
        metavar="DAYS",
        help="days until the token expires: 90, or a duration of whole days such as 90d "
        "(default: never)",
    )
    create.add_argument(
        "--owner",
        type=_owner,
        metavar="OWNER",
        help="the team or service it belongs to (needed with tokens:manage), e.g. payments",
    )

    listing = command(
        "list", "List active tokens, newest first (with --all, revoked and expired ones too)."
    )
    listing.add_argument("--all", action="store_true", help="include revoked and expired tokens")
    listing.add_argument("--name", metavar="PREFIX", help="tokens whose name starts so (any case)")
    listing.add_argument("--scope", metavar="SCOPE", help="tokens holding this scope")
    listing.add_argument("--owner", type=_owner, metavar="OWNER", help="tokens of this owner")
    listing.add_argument(
        "--expiring-within",
        type=_days_or_zero,
        metavar="DAYS",
        help="tokens that expire within DAYS days (14, or a duration: 14d, 48h)",
    )
    listing.add_argument(
        "--unused-for",
        type=_usage_days,
        metavar="DAYS",
        help="tokens not used for DAYS days (90d); never used counts as unused",
    )
    listing.add_argument(
        "--used-within", type=_usage_days, metavar="DAYS", help="tokens used within DAYS days"
    )
    listing.add_argument(
        "--limit",
        type=_page_size,
        default=DEFAULT_PAGE_SIZE,
        metavar="N",
        help=f"rows at most, 1 to {MAX_PAGE_SIZE} (default: {DEFAULT_PAGE_SIZE})",
    )
    listing.add_argument(
        "--cursor", metavar="CURSOR", help="where the previous list said more tokens follow"
    )

    info = command("info", "Show a token's details and its audit trail.")
    info.add_argument("token_id", metavar="TOKEN_ID", help="the token's id (tok_…)")

    revoke = command(
        "revoke",
        "Revoke tokens now, by id or by filters, after asking for confirmation.",
    )
    revoke.add_argument(
        "token_ids", nargs="*", metavar="TOKEN_ID", help="the ids of the tokens (tok_…)"
    )
    revoke.add_argument(
        "--name", metavar="PREFIX", help="every active token whose name starts so (any case)"
    )
    revoke.add_argument("--scope", metavar="SCOPE", help="every active token holding this scope")
    revoke.add_argument(
        "--owner", type=_owner, metavar="OWNER", help="every active token of this owner"
    )
    revoke.add_argument(
        "--expiring-within",
        type=_days_or_zero,
        metavar="DAYS",
        help="every active token that expires within DAYS days (14, or 14d)",
    )
    revoke.add_argument(
        "--unused-for",
        type=_usage_days,
        metavar="DAYS",
        help="every active token not used for DAYS days (90d), never used included",
    )
    revoke.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="do not ask for confirmation (needed when stdin is not a terminal)",
    )

    audit = command(
        "audit-routes",
        "List an app's routes and what they require; exit 1 if one is neither "
        "protected nor declared public.",
    )
    audit.add_argument("app", metavar="MODULE:APP", help="the app, as uvicorn names it")

    extend = command("extend", "Push a token's expiry further.")
    extend.add_argument("token_id", metavar="TOKEN_ID", help="the token's id (tok_…)")
    extend.add_argument(
        "--days",
        type=_days,
        required=True,
        metavar="N",
        help="days to add to its expiry (30, or a duration such as 30d)",
    )

    rotate = command(
        "rotate",
        "Replace a token by a new one (shown once); the old one keeps working for a grace.",
    )
    rotate.add_argument("token_id", metavar="TOKEN_ID", help="the token's id (tok_…)")
    rotate.add_argument(
        "--grace",
        type=_grace,
        default=DEFAULT_GRACE_SECONDS,
        metavar="DURATION",
        help="how long the old token keeps working: 30s, 15m, 24h, 7d; 0 revokes it now "
        f"(default: 24h; at most {MAX_GRACE_SECONDS // UNITS['d']}d)",
    )
    rotate.add_argument(
        "--finish-when-idle",
        type=_idle,
        metavar="DURATION",
        help="end the grace early once the old token is unused this long, e.g. 15m "
        "(at most --grace)",
    )
    return parser
