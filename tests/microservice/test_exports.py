"""stateless_microservice's public names are pinned, and the seed's import gives the SDK client."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import pytest
from pydantic import ValidationError

import amplify_auth_client
import stateless_microservice
from amplify_auth_client import contract
from amplify_auth_server.schemas import CreateTokenRequest
from stateless_microservice import StatelessAction, testing

PUBLIC = [
    "DEFAULT_MAX_BODY_BYTES",
    "ENV_CACHE_TTL",
    "ActionError",
    "ActionRequest",
    "AsyncAuthClient",
    "AuthClient",
    "Caller",
    "HttpMethod",
    "StatelessAction",
    "StatelessService",
    "auth_client_from_environment",
]


def test_the_seed_import_gives_the_sdk_client() -> None:
    from stateless_microservice import AuthClient

    assert AuthClient is amplify_auth_client.AuthClient
    assert stateless_microservice.AsyncAuthClient is amplify_auth_client.AsyncAuthClient


def test_all_is_pinned() -> None:
    # A name added or removed here is an API change: make it on purpose.
    assert stateless_microservice.__all__ == PUBLIC


def test_every_public_attribute_is_exported() -> None:
    public = {
        name
        for name, value in vars(stateless_microservice).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public == set(PUBLIC)


def test_our_classes_claim_the_package() -> None:
    ours = ["ActionError", "ActionRequest", "StatelessAction", "StatelessService"]
    assert {getattr(stateless_microservice, n).__module__ for n in ours} == {
        "stateless_microservice"
    }
    # The SDK's clients and its Caller keep their own home: Caller is the one
    # every integration returns, the same class under both names.
    assert stateless_microservice.AuthClient.__module__ == "amplify_auth_client"
    assert stateless_microservice.Caller is amplify_auth_client.Caller
    assert stateless_microservice.Caller.__module__ == "amplify_auth_client"


def test_testing_module_exports() -> None:
    assert testing.__all__ == ["FakeAuthServer", "service_client"]


@pytest.mark.parametrize(
    "scope", ["orders:read", "a", "x" * 64, "x" * 65, "no spaces", "-lead", "é", "a\n"]
)
def test_scopes_follow_the_servers_grammar(scope: str) -> None:
    # The server's schema and StatelessAction both take the contract's rule.
    try:
        CreateTokenRequest(name="a", scopes=[scope])
    except ValidationError:
        server_takes = False
    else:
        server_takes = True
    try:
        StatelessAction(name="a", path="/a", handler=lambda r, c: None, required_scopes=[scope])
    except ValueError:
        action_takes = False
    else:
        action_takes = True
    assert action_takes == server_takes == contract.is_scope(scope)


def test_without_the_service_extra_the_import_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['fastapi'] = None\n"
        "try:\n"
        "    import stateless_microservice\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "    raise SystemExit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 3, result.stderr
    assert "pip install 'amplify-auth[service]'" in result.stdout
