"""``auth-cli``: manage tokens from the shell (``auth-cli --help``; docs/cli.md).

The console script's entry point; the implementation is in the private
:mod:`amplify_auth_client._cli` package. Call :func:`main` with a list of
arguments to run it in-process: it returns the exit code instead of exiting.
"""

from __future__ import annotations

from amplify_auth_client._cli import main

__all__ = ["main"]
