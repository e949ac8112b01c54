"""AMPLIfy Auth client SDK: validate tokens with a local cache, and manage them.

>>> from amplify_auth_client import AuthClient
>>> auth = AuthClient("http://auth:8000")                     # or env AUTH_SERVICE_URL
>>> result = auth.validate(token, required_scopes=["read"])  # doctest: +SKIP
>>> result.valid, result.reason, result.missing_scopes       # doctest: +SKIP
(True, None, ())

Everything public is imported from here; the modules behind it are private.
Test helpers live in :mod:`amplify_auth_client.testing`.
"""

import importlib
import typing

from amplify_auth_client._caller import Caller
from amplify_auth_client._exceptions import (
    AdminPermissionDenied,
    AdminTokenInvalid,
    AuthConfigError,
    AuthError,
    AuthRequestError,
    AuthServiceUnavailable,
    InvalidRequest,
    TokenAlreadyCreated,
    TokenConflict,
    TokenNotFound,
)
from amplify_auth_client._models import (
    AuditEntry,
    BulkRevocation,
    CacheStats,
    CreatedToken,
    Page,
    Reason,
    RotatedToken,
    TokenInfo,
    TokenStatus,
    UsageDay,
    ValidationResult,
)
from amplify_auth_client._options import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_CACHE_TTL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_NEGATIVE_CACHE_TTL,
    DEFAULT_REPORT_USAGE,
    DEFAULT_RETRY_DEADLINE,
    DEFAULT_TIMEOUT,
    DEFAULT_USAGE_REPORT_INTERVAL,
)
from amplify_auth_client._policy import DEFAULT_OUTAGE_GRACE, OnOutage, Policy
from amplify_auth_client._refusal import Refusal
from amplify_auth_client._version import __version__
from amplify_auth_client.contract import (
    TOKEN_PREFIX,
    generate_token,
    hash_token,
    token_is_well_formed,
)

if typing.TYPE_CHECKING:
    from amplify_auth_client._async_client import AsyncAuthClient
    from amplify_auth_client._authenticator import Authenticator
    from amplify_auth_client._client import AuthClient

__all__ = [
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

#: Loaded on first use, not at import: they bring httpx, httpx-sse and the
#: fork hook, which a process that only needs the contract (the server,
#: importing amplify_auth_client.contract) must not pay for.
_CLIENTS = {
    "AsyncAuthClient": "amplify_auth_client._async_client",
    "AuthClient": "amplify_auth_client._client",
    "Authenticator": "amplify_auth_client._authenticator",
}


def _claim(value: object) -> None:
    # As httpx does: tracebacks and reprs name the public path
    # (amplify_auth_client.TokenNotFound), not the private module behind it.
    if isinstance(value, type):
        value.__module__ = __name__


def __getattr__(name: str) -> object:
    module = _CLIENTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    _claim(value)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_CLIENTS))


for _name in __all__:
    if _name not in _CLIENTS:
        _claim(globals()[_name])
del _name
