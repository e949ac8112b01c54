"""Importing the SDK loads nothing of the server's stack, and the server nothing of the SDK's."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_SIDE = ("amplify_auth_server", "fastapi", "pydantic", "sqlalchemy", "redis", "starlette")


def test_the_sdk_imports_only_its_base_dependencies() -> None:
    # A fresh interpreter: this test process has the server loaded already.
    code = (
        "import json, sys\n"
        "import amplify_auth_client, amplify_auth_client.testing\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(result.stdout))
    assert "httpx" in loaded
    # The validation cache is a plain dict since its hit path dropped the lock.
    assert "cachetools" not in loaded
    assert not loaded & set(SERVER_SIDE)


def test_the_server_loads_the_contract_not_the_sdk() -> None:
    # The server needs the contract (token format, grammars, limits) and
    # nothing of the SDK's HTTP stack: no httpx, no httpx-sse, no fork hook.
    code = (
        "import json, sys\n"
        "import amplify_auth_server.app, amplify_auth_server.__main__\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(result.stdout))
    assert "amplify_auth_client.contract" in loaded
    sdk = {"httpx", "httpx_sse", "amplify_auth_client._base", "amplify_auth_client._client"}
    assert not loaded & sdk
