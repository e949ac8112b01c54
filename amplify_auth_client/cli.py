"""``auth-cli``: token management from the shell (not built yet: issue 5)."""

from __future__ import annotations

import sys


def main() -> None:
    print("auth-cli is not available yet; use the HTTP API (see docs/server.md)", file=sys.stderr)
    raise SystemExit(2)
