"""The token format: generation, local well-formedness check, and hashing.

A token is ``amp_live_`` followed by 43 characters: 37 random base62
characters (220 bits from :mod:`secrets`) and a 6-character base62 CRC32
checksum of everything before it, as GitHub's token format does. The
checksum lets any holder of this module reject a mistyped or made-up
token without a network call; it is not a security boundary (anyone can
compute it), only a cheap filter in front of one.

Only :func:`hash_token` output is ever stored or used as a key. SHA-256 and
not a slow password hash: the secret has 220 bits of entropy, so there is
nothing to brute-force, and validation must stay cheap (see docs/security.md).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from typing import Final

TOKEN_PREFIX: Final = "amp_live_"
_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_LENGTH: Final = 37
_CHECKSUM_LENGTH: Final = 6
TOKEN_LENGTH: Final = len(TOKEN_PREFIX) + _RANDOM_LENGTH + _CHECKSUM_LENGTH

# The public format promises 43 URL-safe characters; the checksum then
# narrows that to the base62 tokens we actually mint.
_SHAPE: Final = re.compile(rf"{TOKEN_PREFIX}[A-Za-z0-9_-]{{43}}")


def _checksum(payload: str) -> str:
    value = zlib.crc32(payload.encode("ascii"))
    digits = []
    for _ in range(_CHECKSUM_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def generate_token() -> str:
    """Mint a new raw token. Show it once, then keep only its hash.

    >>> token_is_well_formed(generate_token())
    True
    """
    body = TOKEN_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LENGTH))
    return body + _checksum(body)


def token_is_well_formed(token: str) -> bool:
    """Whether ``token`` has the ``amp_live_`` shape and a correct checksum.

    A ``False`` here means no server could ever accept the token, so callers
    answer it locally (``reason="malformed"``) without caching it.
    """
    if len(token) != TOKEN_LENGTH or not _SHAPE.fullmatch(token):
        return False
    split = TOKEN_LENGTH - _CHECKSUM_LENGTH
    return _checksum(token[:split]) == token[split:]


def hash_token(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored, cached and looked up.

    ``surrogatepass`` because a JSON body may carry a lone surrogate, and any
    string handed to us must hash rather than raise.
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
