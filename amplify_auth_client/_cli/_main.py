"""``auth-cli``'s entry point: parse, find the server and the admin token, run, show, exit.

Every failure ends here as one line on stderr and an exit code from
:mod:`._errors`, never a traceback; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from amplify_auth_client._cli._commands import (
    COMMANDS,
    Result,
    Revocations,
    TokenDetail,
    TokenList,
    filtered,
    sent,
    to_json,
)
from amplify_auth_client._cli._errors import (
    FAILED,
    INTERRUPTED,
    NOT_ALLOWED,
    NOT_FOUND,
    OK,
    USAGE,
    CLIError,
    explain,
)
from amplify_auth_client._cli._parser import PROG, build_parser
from amplify_auth_client._cli._settings import admin_token, auth_url, shown_url
from amplify_auth_client._client import AuthClient
from amplify_auth_client._exceptions import AuthError
from amplify_auth_client._models import CreatedToken, TokenInfo


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``auth-cli`` with ``argv`` (default: the process's arguments); return the exit code.

    >>> main(["--json", "list"])  # doctest: +SKIP
    0
    """
    _quiet_sdk_logs()
    try:
        return _run(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else USAGE
    except CLIError as exc:
        _fail(str(exc))
        return exc.code
    except KeyboardInterrupt:
        _fail("interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`auth-cli list | head -1`). As Python's docs
        # advise: point stdout at devnull so the exit's flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return FAILED
    except Exception as exc:  # a bug of ours: still one line, with what to report
        _fail(f"unexpected error, please report it: {type(exc).__name__}: {exc}")
        return FAILED


def _fail(message: str) -> None:
    # One line whatever the message holds (a server's detail, an exception's
    # text): scripts and log collectors read errors line by line.
    message = " ".join(message.splitlines())
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()


def _quiet_sdk_logs() -> None:
    """Keep the SDK's warnings (one per failed attempt) off the terminal.

    Without a handler on its logger, Python's last-resort handler prints them
    on stderr, next to the one line that already says what went wrong.
    """
    logger = logging.getLogger("amplify_auth_client")
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _renderer() -> ModuleType:
    """How results are drawn: with rich when the ``[cli]`` extra is installed, else as
    plain aligned text (:mod:`._plain`). Chosen before any call, so that ``create``
    never mints a token it then cannot show."""
    try:
        from amplify_auth_client._cli import _render
    except ImportError as exc:
        if exc.name is None or exc.name.partition(".")[0] != "rich":
            raise
        from amplify_auth_client._cli import _plain

        return _plain
    return _render


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "audit-routes":  # reads an app, asks no server
        from amplify_auth_client._cli._audit import run

        return run(args.app, as_json=args.json)
    render = None if args.json else _renderer()
    url = auth_url(args.auth_url)
    token = admin_token(args.admin_token, url)
    if token.value is None:
        raise CLIError(
            f"no admin token ({token.source}): pass --admin-token or set AUTH_ADMIN_TOKEN",
            NOT_ALLOWED,
        )
    command = COMMANDS[args.command]
    try:
        # No revocation subscription: a one-shot command validates no token,
        # so a stream of evictions would have no cache to act on.
        with AuthClient(url, admin_token=token.value, subscribe_revocations=False) as client:
            if args.command == "revoke":
                _check_revoke(args)
                if not args.yes:
                    _confirm_revoke(client, args)
            result = command(args, client)
    except AuthError as exc:
        raise explain(exc, url=shown_url(url), token_source=token.source, sent=sent(args)) from None
    if render is None:
        json.dump(to_json(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
        if isinstance(result, TokenList) and result.next_cursor is not None:
            # The rows stay the table's rows; where the rest is goes beside them.
            sys.stderr.write(f"{PROG}: more tokens: --cursor {result.next_cursor}\n")
    else:
        _show(render, render.console(sys.stdout), result)
    sys.stdout.flush()
    if isinstance(result, Revocations) and result.outcome and result.outcome.not_found:
        return NOT_FOUND  # the others were revoked; a script must still notice
    return OK


def _show(render: ModuleType, out: Any, result: Result) -> None:
    """Draw ``result`` with ``render`` (:mod:`._render` or :mod:`._plain`, which draw
    the same results, each its own way)."""
    if isinstance(result, CreatedToken):
        render.created(out, result)
    elif isinstance(result, TokenList):
        render.token_table(
            out, result.tokens, include_all=result.include_all, next_cursor=result.next_cursor
        )
    elif isinstance(result, TokenDetail):
        render.detail(out, result)
    elif isinstance(result, Revocations):
        render.revocations(out, result)
    else:
        render.changed(out, result.token, result.verb)


def _check_revoke(args: argparse.Namespace) -> None:
    if bool(args.token_ids) == filtered(args):
        raise CLIError(
            "revoke takes token ids, or filters (--name, --scope, --expiring-within, "
            "--unused-for), not "
            "both; revoking every token needs a filter",
            USAGE,
        )


def _confirm_revoke(client: AuthClient, args: argparse.Namespace) -> None:
    """Ask on the terminal; refuse at once when there is none, rather than wait on a pipe."""
    if not sys.stdin.isatty():
        raise CLIError(
            "revoke asks for confirmation and stdin is not a terminal: pass --yes", USAGE
        )
    if filtered(args):
        count = client.revoke_where(
            name=args.name, scope=args.scope, expires_within_days=args.expiring_within,
            owner=args.owner, unused_for_days=args.unused_for, dry_run=True,
        )  # fmt: skip
        if count == 0:
            return  # Nothing matches: nothing to ask about.
        question = f"Revoke {count} active token{'s' if count != 1 else ''} {_filters(args)}?"
        declined = f"not revoked: the {count} matching tokens are unchanged"
    elif len(args.token_ids) > 1:
        question = f"Revoke {len(args.token_ids)} tokens ({', '.join(args.token_ids)})?"
        declined = "not revoked: the tokens are unchanged"
    else:
        token = client.get_token(args.token_ids[0])
        if token.status == "revoked":
            return  # Revoking again changes nothing: no need to ask.
        question = f"Revoke {_describe(token)}?"
        declined = f"not revoked: {token.token_id} is unchanged"
    answer = ""
    try:
        sys.stderr.write(f"{question} This cannot be undone. [y/N] ")
        sys.stderr.flush()
        answer = sys.stdin.readline()  # end of input ("") is a no
    finally:
        # End the prompt's line unless the terminal echoed the user's Enter
        # there: after Ctrl-C or Ctrl-D, or when stderr is not that terminal.
        if not answer.endswith("\n") or not sys.stderr.isatty():
            sys.stderr.write("\n")
    if answer.strip().lower() not in ("y", "yes"):
        raise CLIError(declined, FAILED)


def _filters(args: argparse.Namespace) -> str:
    parts = []
    if args.name is not None:
        parts.append(f"whose name starts with {args.name!r}")
    if args.scope is not None:
        parts.append(f"holding {args.scope}")
    if args.expiring_within is not None:
        parts.append(f"expiring within {args.expiring_within} days")
    if args.owner is not None:
        parts.append(f"of owner {args.owner}")
    if args.unused_for is not None:
        parts.append(f"unused for {args.unused_for} days")
    return " and ".join(parts)


def _describe(token: TokenInfo) -> str:
    expires = (
        "never expires" if token.expires_at is None else f"expires {token.expires_at:%Y-%m-%d}"
    )
    return f"{token.token_id} ({token.name!r}, scopes {' '.join(token.scopes)}, {expires})"
