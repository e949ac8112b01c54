"""AMPLIfy Auth client SDK: validate tokens with a local cache, and manage them.

>>> from amplify_auth_client import AuthClient
>>> auth = AuthClient("http://auth:8000")                     # or env AUTH_SERVICE_URL
>>> result = auth.validate(token, required_scopes=["read"])  # doctest: +SKIP
>>> result.valid, result.reason, result.missing_scopes       # doctest: +SKIP
(True, None, ())

Everything public is imported from here; the modules behind it are private.
Test helpers live in :mod:`amplify_auth_client.testing`.
"""

from amplify_auth_client._async_client import AsyncAuthClient
from amplify_auth_client._client import AuthClient
from amplify_auth_client._config import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_CACHE_TTL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_NEGATIVE_CACHE_TTL,
    DEFAULT_RETRY_DEADLINE,
    DEFAULT_TIMEOUT,
)
from amplify_auth_client._exceptions import (
    AdminPermissionDenied,
    AdminTokenInvalid,
    AuthConfigError,
    AuthError,
    AuthRequestError,
    AuthServiceUnavailable,
    InvalidRequest,
    TokenConflict,
    TokenNotFound,
)
from amplify_auth_client._models import (
    AuditEntry,
    CacheStats,
    CreatedToken,
    Reason,
    TokenInfo,
    TokenStatus,
    ValidationResult,
)
from amplify_auth_client._tokens import (
    TOKEN_PREFIX,
    generate_token,
    hash_token,
    token_is_well_formed,
)
from amplify_auth_client._version import __version__

__all__ = [
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

# As httpx does: tracebacks and reprs name the public path
# (amplify_auth_client.TokenNotFound), not the private module behind it.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type):
        _value.__module__ = "amplify_auth_client"
del _name, _value
