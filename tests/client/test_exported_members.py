"""The package's public names are exactly the pinned list, sorted, and all importable."""

from __future__ import annotations

from types import ModuleType

import amplify_auth_client
from amplify_auth_client import testing

PUBLIC = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_CACHE_TTL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_NEGATIVE_CACHE_TTL",
    "DEFAULT_RETRY_DEADLINE",
    "DEFAULT_TIMEOUT",
    "TOKEN_PREFIX",
    "AdminPermissionDenied",
    "AdminTokenInvalid",
    "AsyncAuthClient",
    "AuditEntry",
    "AuthClient",
    "AuthConfigError",
    "AuthError",
    "AuthRequestError",
    "AuthServiceUnavailable",
    "CacheStats",
    "CreatedToken",
    "InvalidRequest",
    "Reason",
    "TokenConflict",
    "TokenInfo",
    "TokenNotFound",
    "TokenStatus",
    "ValidationResult",
    "__version__",
    "generate_token",
    "hash_token",
    "token_is_well_formed",
]


def test_all_is_pinned() -> None:
    # A name added or removed here is an API change: make it on purpose.
    assert amplify_auth_client.__all__ == PUBLIC


def test_every_public_attribute_is_exported() -> None:
    # Submodules (testing, cli, and the private ones) are reached by import, not listed.
    public = {
        name
        for name, value in vars(amplify_auth_client).items()
        if (not name.startswith("_") or name == "__version__") and not isinstance(value, ModuleType)
    }
    assert public == set(PUBLIC)


def test_every_exported_name_resolves() -> None:
    for name in PUBLIC:
        assert getattr(amplify_auth_client, name) is not None


def test_exported_classes_claim_the_package() -> None:
    # Private module paths never show in tracebacks or reprs users see.
    classes = [v for v in map(amplify_auth_client.__dict__.get, PUBLIC) if isinstance(v, type)]
    assert len(classes) == 16
    assert {cls.__module__ for cls in classes} == {"amplify_auth_client"}


def test_testing_module_exports() -> None:
    assert testing.__all__ == ["FakeAuthServer", "is_testing", "set_testing"]
