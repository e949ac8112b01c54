"""AMPLIfy Auth client SDK (work in progress: token format helpers only)."""

from amplify_auth_client._tokens import (
    TOKEN_PREFIX,
    generate_token,
    hash_token,
    token_is_well_formed,
)
from amplify_auth_client._version import __version__

__all__ = [
    "TOKEN_PREFIX",
    "__version__",
    "generate_token",
    "hash_token",
    "token_is_well_formed",
]
