"""The package's public names are exactly the pinned list, sorted, and all importable."""

from __future__ import annotations

from types import ModuleType

import amplify_auth_client
from amplify_auth_client import contract, testing

PUBLIC = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_CACHE_TTL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_NEGATIVE_CACHE_TTL",
    "DEFAULT_OUTAGE_GRACE",
    "DEFAULT_REPORT_USAGE",
    "DEFAULT_RETRY_DEADLINE",
    "DEFAULT_TIMEOUT",
    "DEFAULT_USAGE_REPORT_INTERVAL",
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
    "Authenticator",
    "BulkRevocation",
    "CacheStats",
    "Caller",
    "CreatedToken",
    "InvalidRequest",
    "OnOutage",
    "Page",
    "Policy",
    "Reason",
    "Refusal",
    "RotatedToken",
    "TokenAlreadyCreated",
    "TokenConflict",
    "TokenInfo",
    "TokenNotFound",
    "TokenStatus",
    "UsageDay",
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
    # Submodules (testing, cli, contract and the private ones) are reached by
    # import, not listed; the clients are offered before they are loaded.
    public = {
        name
        for name in dir(amplify_auth_client)
        if (not name.startswith("_") or name == "__version__")
        and not isinstance(getattr(amplify_auth_client, name), ModuleType)
    }
    assert public == set(PUBLIC)


def test_every_exported_name_resolves() -> None:
    for name in PUBLIC:
        assert getattr(amplify_auth_client, name) is not None


def test_exported_classes_claim_the_package() -> None:
    # Private module paths never show in tracebacks or reprs users see.
    classes = [
        value for name in PUBLIC if isinstance(value := getattr(amplify_auth_client, name), type)
    ]
    assert len(classes) == 25
    assert {cls.__module__ for cls in classes} == {"amplify_auth_client"}


def test_testing_module_exports() -> None:
    assert testing.__all__ == ["FakeAuthServer", "is_testing", "set_testing"]


def test_an_unknown_name_is_an_attribute_error() -> None:
    assert not hasattr(amplify_auth_client, "AuthCleint")


def test_the_contract_is_pinned() -> None:
    # The server, the fake, the CLI and stateless_microservice import these:
    # a name changed here changes all of them.
    assert contract.__all__ == [
        "ADMIN_SCOPE",
        "ADMIN_TOKEN_FILE_SUFFIX",
        "CACHEABLE_REASONS",
        "DEFAULT_GRACE_SECONDS",
        "DEFAULT_PAGE_SIZE",
        "DEFAULT_SQLITE_FILE",
        "EXPIRES_AFTER_MANAGER",
        "IDEMPOTENCY_KEY_HEADER",
        "IDEMPOTENCY_KEY_PATTERN",
        "IDEMPOTENCY_WINDOW",
        "IDEMPOTENT_REPLAYED_HEADER",
        "LABEL_PATTERN",
        "MAX_BODY_BYTES",
        "MAX_BULK_IDS",
        "MAX_CURSOR_LENGTH",
        "MAX_DESCRIPTION_LENGTH",
        "MAX_GRACE_SECONDS",
        "MAX_IDEMPOTENCY_KEY_LENGTH",
        "MAX_METADATA_ITEMS",
        "MAX_METADATA_KEY_LENGTH",
        "MAX_METADATA_VALUE_LENGTH",
        "MAX_NAME_LENGTH",
        "MAX_OWNER_LENGTH",
        "MAX_PAGE_SIZE",
        "MAX_SCOPES",
        "MAX_SCOPE_LENGTH",
        "MAX_TOKEN_FIELD",
        "MAX_TTL_DAYS",
        "MAX_USAGE_COUNT",
        "MAX_USAGE_HITS",
        "MIN_FINISH_WHEN_IDLE_SECONDS",
        "OTHER_OWNER",
        "OWNER",
        "OWNER_PATTERN",
        "SCOPE",
        "SCOPE_NOT_HELD",
        "SCOPE_PATTERN",
        "TEXT_PATTERN",
        "TOKENS_MANAGE_SCOPE",
        "TOKEN_ID",
        "TOKEN_ID_PREFIX",
        "TOKEN_LENGTH",
        "TOKEN_LIKE",
        "TOKEN_PREFIX",
        "USAGE_DAYS",
        "USAGE_REPORT_INTERVAL",
        "ListStatus",
        "Reason",
        "TokenStatus",
        "admin_token_file",
        "bearer_token",
        "create_fingerprint",
        "delegation_refusal",
        "generate_token",
        "hash_idempotency_key",
        "hash_token",
        "is_idempotency_key",
        "is_label",
        "is_owner",
        "is_scope",
        "is_text",
        "is_token_id",
        "iso",
        "manager_reach",
        "missing_scopes",
        "new_idempotency_key",
        "new_token_id",
        "rotate_fingerprint",
        "rotation_conflict",
        "rotation_times",
        "sqlite_path",
        "status_of",
        "token_is_well_formed",
    ]
    assert all(hasattr(contract, name) for name in contract.__all__)
