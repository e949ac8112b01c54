"""Importing a part whose extra is missing says which extra to install."""

from __future__ import annotations

import subprocess
import sys

# Makes the named modules unimportable in a fresh interpreter, as if their
# distributions were not installed.
_BLOCK = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
try:
    import {target}
except ImportError as exc:
    print(exc)
    raise SystemExit(3)
"""


def _import_without(target: str, blocked: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCK.format(blocked=blocked, target=target)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_server_without_its_extra_names_the_extra() -> None:
    for missing in (["fastapi"], ["sqlalchemy"], ["redis"]):
        result = _import_without("amplify_auth_server", missing)
        assert result.returncode == 3, result.stderr
        assert "pip install 'amplify-auth[server]'" in result.stdout
