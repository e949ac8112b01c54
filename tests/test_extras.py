"""Importing a part whose extra is missing says which extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

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


INTEGRATIONS = [
    ("fastapi", ["fastapi"], "fastapi"),
    ("django", ["django"], "django"),
    ("flask", ["flask"], "flask"),
    ("grpc", ["grpc"], "grpc"),
]


@pytest.mark.parametrize(("integration", "blocked", "extra"), INTEGRATIONS)
def test_an_integration_without_its_framework_names_its_extra(
    integration: str, blocked: list[str], extra: str
) -> None:
    result = _import_without(f"amplify_auth_client.integrations.{integration}", blocked)
    assert result.returncode == 3, result.stderr
    assert f"pip install 'amplify-auth[{extra}]'" in result.stdout
    # The message is the hint, not a chain of tracebacks through our modules.
    assert "Traceback" not in result.stderr


def test_drf_names_without_drf_name_the_drf_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['rest_framework'] = None\n"
        "import amplify_auth_client.integrations.django as d\n"
        "d.require_scopes('read')\n"
        "try:\n"
        "    d.AmplifyTokenAuthentication\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "    raise SystemExit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 3, result.stderr
    assert "pip install 'amplify-auth[drf]'" in result.stdout


def test_the_asgi_middleware_and_the_package_need_no_framework() -> None:
    blocked = ["fastapi", "starlette", "django", "flask", "grpc"]
    result = _import_without("amplify_auth_client.integrations.asgi", blocked)
    assert result.returncode == 0, result.stdout + result.stderr
