"""The wire contract, written once: what a token, an id, a scope and every field may be.

The server, :class:`~amplify_auth_client.testing.FakeAuthServer`, ``auth-cli``
and ``stateless_microservice`` all import their rules from here, so that a
rule cannot be written twice and drift. This module imports nothing beyond
the standard library: the server loads it without loading the SDK's HTTP
clients.

**Tokens** are ``amp_live_`` followed by 43 characters: 37 random base62
characters (220 bits from :mod:`secrets`) and a 6-character base62 CRC32
checksum of everything before it, as GitHub's token format does. The
checksum lets any holder of this module reject a mistyped or made-up token
without a network call; it is not a security boundary (anyone can compute
it), only a cheap filter in front of one.

Only :func:`hash_token` output is ever stored or used as a key. SHA-256 and
not a slow password hash: the secret has 220 bits of entropy, so there is
nothing to brute-force, and validation must stay cheap (see docs/security.md).

>>> token = generate_token()
>>> token_is_well_formed(token), is_token_id(new_token_id()), is_scope("orders:read")
(True, True, True)
>>> missing_scopes({"read"}, ["read", "write", "write"])
('write',)
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import string
import zlib
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal, TypeGuard

__all__ = [
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

# -- tokens -------------------------------------------------------------------

TOKEN_PREFIX: Final = "amp_live_"
_ALPHABET: Final = string.digits + string.ascii_uppercase + string.ascii_lowercase
_RANDOM_LENGTH: Final = 37
_CHECKSUM_LENGTH: Final = 6
TOKEN_LENGTH: Final = len(TOKEN_PREFIX) + _RANDOM_LENGTH + _CHECKSUM_LENGTH
#: The longest ``token`` a validation request may carry (a well-formed one is
#: TOKEN_LENGTH; longer ones are answered "malformed", up to this).
MAX_TOKEN_FIELD: Final = 1024

# The public format promises 43 URL-safe characters; the checksum then
# narrows that to the base62 tokens we actually mint.
_SHAPE: Final = re.compile(rf"{TOKEN_PREFIX}[A-Za-z0-9_-]{{43}}")
#: Anything that looks like a token, for scrubbing text before it is shown.
TOKEN_LIKE: Final = re.compile(rf"{TOKEN_PREFIX}[A-Za-z0-9_-]{{20,}}")


@functools.cache
def _pairs(alphabet: str) -> tuple[str, ...]:
    """Every two-digit numeral in base ``len(alphabet)``, indexed by its value."""
    return tuple(high + low for high in alphabet for low in alphabet)


def _digits(value: int, alphabet: str, length: int) -> str:
    """``value`` written in base ``len(alphabet)``, most significant digit first.

    Two digits per division (a table of pairs): half the big-number
    divisions of one per digit, and a token and an id are minted per create.
    """
    pairs, square = _pairs(alphabet), len(alphabet) ** 2
    numerals = []
    for _ in range(length // 2):
        value, pair = divmod(value, square)
        numerals.append(pairs[pair])
    if length % 2:
        numerals.append(alphabet[value % len(alphabet)])
    return "".join(reversed(numerals))


@functools.cache
def _byte_table(alphabet: str) -> tuple[bytes, bytes]:
    """How a random byte becomes a character of ``alphabet``: :meth:`bytes.translate`'s
    table, and the bytes it deletes.

    A byte below the largest multiple of ``len(alphabet)`` (248 for base 62,
    252 for base 36) is a character, its value modulo the base; the bytes
    above it are rejected, so that every character is equally likely.
    """
    usable = 256 - 256 % len(alphabet)
    table = bytes(ord(alphabet[b % len(alphabet)]) if b < usable else 0 for b in range(256))
    return table, bytes(range(usable, 256))


def _random(alphabet: str, length: int) -> str:
    """``length`` characters drawn uniformly and independently from ``alphabet``.

    Bytes from the OS's CSPRNG, each kept below the largest multiple of the
    base and then taken modulo it (rejection sampling): the distribution of
    a ``secrets.choice`` per character, for one ``os.urandom`` call and one
    :meth:`bytes.translate` in C. A token and an id are minted per create,
    in the single writer, and drawing them digit by digit from one big
    integer was a sixth of its time.
    """
    table, rejected = _byte_table(alphabet)
    drawn = b""
    while len(drawn) < length:
        # A few bytes more than needed: 3 % of them (base 62) are rejected.
        drawn += os.urandom(length + 8).translate(table, rejected)
    return drawn[:length].decode("ascii")


def _checksum(payload: str) -> str:
    return _digits(zlib.crc32(payload.encode("ascii")), _ALPHABET, _CHECKSUM_LENGTH)


def generate_token() -> str:
    """Mint a new raw token. Show it once, then keep only its hash.

    >>> token_is_well_formed(generate_token())
    True
    """
    body = TOKEN_PREFIX + _random(_ALPHABET, _RANDOM_LENGTH)
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


# -- token ids ----------------------------------------------------------------

TOKEN_ID_PREFIX: Final = "tok_"
_TOKEN_ID_ALPHABET: Final = string.ascii_lowercase + string.digits
_TOKEN_ID_LENGTH: Final = 16
#: A token id: what people paste into ``auth-cli revoke``; never secret.
TOKEN_ID: Final = re.compile(rf"{TOKEN_ID_PREFIX}[a-z0-9]{{{_TOKEN_ID_LENGTH}}}")


def new_token_id() -> str:
    """A fresh, printable, non-secret token id."""
    return TOKEN_ID_PREFIX + _random(_TOKEN_ID_ALPHABET, _TOKEN_ID_LENGTH)


def is_token_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` could be a token id; anything else is refused without a lookup."""
    return isinstance(value, str) and TOKEN_ID.fullmatch(value) is not None


# -- scopes -------------------------------------------------------------------

MAX_SCOPE_LENGTH: Final = 64
#: Letters, digits and ``_.:/*-``, starting with a letter or digit.
SCOPE_PATTERN: Final = rf"^[A-Za-z0-9][A-Za-z0-9_.:/*-]{{0,{MAX_SCOPE_LENGTH - 1}}}$"
SCOPE: Final = re.compile(SCOPE_PATTERN)
#: Scopes a token may hold, and a validation may require, at most.
MAX_SCOPES: Final = 50
#: The scope that may manage every token.
ADMIN_SCOPE: Final = "admin"


#: The scope that, on a token with an owner, manages that owner's tokens only.
TOKENS_MANAGE_SCOPE: Final = "tokens:manage"


def is_scope(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a scope a token can hold."""
    return isinstance(value, str) and SCOPE.fullmatch(value) is not None


def missing_scopes(held: Collection[str], required: Iterable[str]) -> tuple[str, ...]:
    """The scopes of ``required`` that ``held`` lacks, in the order asked, without repeats.

    The one scope check: the server's answer, every cache's, the fake's and a
    service's all come from it, so that they can never disagree.
    """
    return tuple(dict.fromkeys(scope for scope in required if scope not in held))


# -- owners -------------------------------------------------------------------

MAX_OWNER_LENGTH: Final = 63
#: A team or service a token belongs to: 1 to 63 of lowercase ASCII letters,
#: digits, ``.``, ``_`` and ``-``, starting with a letter or a digit (so that
#: it never reads as an option on a command line, nor as a hidden file). The
#: length is a DNS label's: an owner is often a service's name. Lowercase
#: only, so that two owners can never differ by case alone: ``Payments`` is
#: refused, never folded to ``payments``.
OWNER_PATTERN: Final = rf"^[a-z0-9][a-z0-9._-]{{0,{MAX_OWNER_LENGTH - 1}}}$"
OWNER: Final = re.compile(OWNER_PATTERN)


def is_owner(value: object) -> TypeGuard[str]:
    """Whether ``value`` may be a token's owner.

    >>> is_owner("payments"), is_owner("Payments"), is_owner("-x"), is_owner("a" * 64)
    (True, False, False, False)
    """
    return isinstance(value, str) and OWNER.fullmatch(value) is not None


# -- delegated administration -------------------------------------------------
#
# The rules of who may manage what, as the server and FakeAuthServer both
# apply them (the server's amplify_auth_server.authz adds the 404s).

#: A 403's ``error`` code when a delegated admin asks beyond its delegation.
OTHER_OWNER: Final = "other_owner"
SCOPE_NOT_HELD: Final = "scope_not_held"
EXPIRES_AFTER_MANAGER: Final = "expires_after_manager"


def manager_reach(scopes: Collection[str], owner: str | None) -> str | None:
    """Whose tokens a token with ``scopes`` and ``owner`` manages: ``"*"`` for every
    owner's (``admin``), its owner's (``tokens:manage`` and an owner), else None.

    >>> manager_reach(["admin"], None), manager_reach(["tokens:manage"], "payments")
    ('*', 'payments')
    >>> manager_reach(["tokens:manage"], None) is None
    True
    """
    if ADMIN_SCOPE in scopes:
        return "*"
    if TOKENS_MANAGE_SCOPE in scopes and owner:
        return owner
    return None


def delegation_refusal(
    *,
    held: Collection[str],
    reach: str,
    manager_expires_at: datetime | None,
    owner: str | None,
    scopes: Iterable[str],
    expires_at: datetime | None,
) -> tuple[str, str] | None:
    """Why a manager of ``reach`` may not create a token of ``owner`` with ``scopes``
    expiring at ``expires_at`` (None: never): ``(code, detail)``, or None if it may.

    A global admin (``"*"``) may create anything. A delegated admin creates only
    for its owner, grants only scopes it ``held`` itself (so never ``admin``),
    and nothing that outlives it.
    """
    if reach == "*":
        return None
    if owner is not None and owner != reach:
        return OTHER_OWNER, f"this token creates tokens for owner {reach!r} only"
    beyond = [scope for scope in scopes if scope not in held]
    if beyond:
        return SCOPE_NOT_HELD, (
            "a token can grant only scopes it holds itself; it does not hold: " + ", ".join(beyond)
        )
    if manager_expires_at is not None and (expires_at is None or expires_at > manager_expires_at):
        return EXPIRES_AFTER_MANAGER, (
            "a token can create only tokens that expire no later than itself: give "
            "ttl_days that ends by its own expiry"
        )
    return None


# -- the other fields of a token ------------------------------------------------
#
# Refused, never normalised: the server stores exactly what it accepts, and
# answers exactly what it stored. A name is never trimmed, a scope list never
# deduplicated, a number never read from a string.

MAX_NAME_LENGTH: Final = 100
MAX_DESCRIPTION_LENGTH: Final = 1000
MAX_METADATA_ITEMS: Final = 20
MAX_METADATA_KEY_LENGTH: Final = 64
MAX_METADATA_VALUE_LENGTH: Final = 500
#: No token expires further away than this (and ``datetime`` has a ceiling).
MAX_TTL_DAYS: Final = 36_500
#: Rows one page of a listing (tokens, the audit log) holds by default, and at most.
DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000
#: The longest cursor a server makes (and so the longest it takes).
MAX_CURSOR_LENGTH: Final = 512
#: Token ids one bulk revocation may name.
MAX_BULK_IDS: Final = 1000
#: The largest request body the server reads, by default (``MAX_BODY_BYTES``).
MAX_BODY_BYTES: Final = 64 * 1024
#: Seconds between two of an SDK's usage reports, unless its
#: ``usage_report_interval`` says otherwise: how long a cache hit may wait to
#: reach the server (which a rotation's idle limit must outlast).
USAGE_REPORT_INTERVAL: Final = 60.0
#: Entries one usage report (``POST /auth/usage``) holds at most: about 46 KB,
#: under MAX_BODY_BYTES; an SDK splits a larger harvest.
MAX_USAGE_HITS: Final = 500
#: The most uses one entry of a report may claim (more is refused, not cut).
MAX_USAGE_COUNT: Final = 1_000_000
#: Days of per-day usage a server keeps, and ``GET /auth/tokens/{id}`` shows.
USAGE_DAYS: Final = 30


#: A name or a metadata key: no control character at all, and no space at
#: either end (two names must not differ by an invisible space). Any other
#: character, in any script, is allowed.
LABEL_PATTERN: Final = r"^[^\x00-\x20\x7f]([^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?$"
#: A description or a metadata value: no control character but tab and newline.
#: PostgreSQL cannot store a NUL, and a terminal or a log line should not be
#: steered by what a token's creator typed.
TEXT_PATTERN: Final = r"^[^\x00-\x08\x0b-\x1f\x7f]*$"
_LABEL: Final = re.compile(LABEL_PATTERN)
_TEXT: Final = re.compile(TEXT_PATTERN)


def is_label(value: object, max_length: int) -> TypeGuard[str]:
    """Whether ``value`` may be a name (``MAX_NAME_LENGTH``) or a metadata key
    (``MAX_METADATA_KEY_LENGTH``): see :data:`LABEL_PATTERN`."""
    return (
        isinstance(value, str) and len(value) <= max_length and _LABEL.fullmatch(value) is not None
    )


def is_text(value: object, max_length: int) -> TypeGuard[str]:
    """Whether ``value`` may be a description (``MAX_DESCRIPTION_LENGTH``) or a
    metadata value (``MAX_METADATA_VALUE_LENGTH``): see :data:`TEXT_PATTERN`."""
    return (
        isinstance(value, str) and len(value) <= max_length and _TEXT.fullmatch(value) is not None
    )


# -- idempotent creates --------------------------------------------------------
#
# As Stripe does: a create sent with an ``Idempotency-Key`` that the same
# admin token sent within the window, with the same body, is answered with
# the first create's token again, and mints nothing. The raw token was in the
# first answer only and is stored nowhere, so the replay holds the token's
# metadata with ``"token": null``, status 200 (201 said "created", and this
# request created nothing) and ``Idempotent-Replayed: true``. The same key
# with another body is a 422: the key names one intended create.

IDEMPOTENCY_KEY_HEADER: Final = "Idempotency-Key"
IDEMPOTENT_REPLAYED_HEADER: Final = "Idempotent-Replayed"
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255
#: Visible ASCII, no space: what any HTTP stack carries in a header unchanged.
IDEMPOTENCY_KEY_PATTERN: Final = rf"^[\x21-\x7e]{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}$"
_IDEMPOTENCY_KEY: Final = re.compile(IDEMPOTENCY_KEY_PATTERN)
#: How long a key is remembered: a day covers any client's retries, and a
#: restart or two of the process that sent them.
IDEMPOTENCY_WINDOW: Final = timedelta(hours=24)


def is_idempotency_key(value: object) -> TypeGuard[str]:
    """Whether ``value`` may be sent as an ``Idempotency-Key``: 1 to 255 visible ASCII
    characters."""
    return isinstance(value, str) and _IDEMPOTENCY_KEY.fullmatch(value) is not None


def new_idempotency_key() -> str:
    """A fresh key: 128 random bits, as a UUID 4 would hold, in URL-safe text."""
    return secrets.token_urlsafe(16)


def hash_idempotency_key(key: str) -> str:
    """The SHA-256 hex digest a key is kept under: a key may be something a caller
    would not want stored (a request id from elsewhere, or worse)."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def create_fingerprint(
    name: str,
    scopes: Iterable[str],
    ttl_days: int | None,
    description: str | None,
    metadata: Mapping[str, str] | None,
    owner: str | None = None,
) -> str:
    """The SHA-256 hex digest of a create's body, in one canonical form: the same
    fields mean the same body, whatever their order, spacing or omitted defaults.

    ``owner`` counts only when given, so that a body without one keeps the
    fingerprint it had before owners existed (keys stored then still match).
    """
    fields: dict[str, object] = {
        "name": name,
        "scopes": list(scopes),
        "ttl_days": ttl_days,
        "description": description,
        "metadata": None if metadata is None else dict(metadata),
    }
    if owner is not None:
        fields["owner"] = owner
    canonical = json.dumps(
        fields,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


# -- rotation -------------------------------------------------------------------
#
# A rotation mints a successor with the same name, scopes, owner, description
# and metadata, and gives the old token a grace period in which both work, so
# that a fleet can move to the new one without downtime.

#: The grace an old token keeps when none is asked for: a day, long enough
#: for a deploy (or a night) to roll the new token out everywhere.
DEFAULT_GRACE_SECONDS: Final = 86_400
#: The longest grace a rotation may give: 30 days. Longer is no rotation.
MAX_GRACE_SECONDS: Final = 30 * 86_400
#: The shortest idle time that may end a grace early. A use answered by an
#: SDK's cache reaches ``last_used_at`` only with its next report (every
#: minute by default) and the server's next flush: an idle time shorter than
#: that would end the grace of a token still in use.
MIN_FINISH_WHEN_IDLE_SECONDS: Final = 120


def rotation_conflict(token_id: str, status: TokenStatus, replaced_by: str | None) -> str | None:
    """Why the token may not be rotated (the 409's detail), or None if it may.

    A revoked or expired token has nobody left to move off it, and an
    already rotated one has a successor: rotating it again would fork the
    line of succession.
    """
    if replaced_by is not None:
        return (
            f"token {token_id} was already rotated (replaced by {replaced_by}); rotate "
            f"{replaced_by} instead"
        )
    if status == "revoked":
        return f"token {token_id} is revoked; a revoked token cannot be rotated"
    if status == "expired":
        return f"token {token_id} has expired; create a new token instead"
    return None


def rotation_times(
    *, now: datetime, created_at: datetime, expires_at: datetime | None, grace_seconds: int
) -> tuple[datetime | None, datetime]:
    """``(the successor's expiry, the old token's deadline)`` of a rotation at ``now``.

    The successor lives as long as the old token was meant to (``expires_at -
    created_at``, counted from now; never expiring if it never expired, and
    no further than ``MAX_TTL_DAYS``). The old token stays valid until ``now
    + grace_seconds`` or its own expiry, whichever is sooner; a deadline of
    ``now`` (grace 0) means it is revoked at once.
    """
    successor = None
    if expires_at is not None:
        successor = now + min(expires_at - created_at, timedelta(days=MAX_TTL_DAYS))
    deadline = now + timedelta(seconds=grace_seconds)
    if expires_at is not None:
        deadline = min(deadline, expires_at)
    return successor, deadline


def rotate_fingerprint(
    token_id: str, grace_seconds: int, finish_when_idle_seconds: int | None
) -> str:
    """The SHA-256 hex digest of a rotation's request, for its ``Idempotency-Key``:
    a key that named a create (or another rotation) does not match it."""
    canonical = json.dumps(
        {
            "rotate": token_id,
            "grace_seconds": grace_seconds,
            "finish_when_idle_seconds": finish_when_idle_seconds,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


# -- answers ------------------------------------------------------------------

#: Why a token is not valid; None when it is.
Reason = Literal["malformed", "unknown", "revoked", "expired", "insufficient_scope"]
#: A token's state as management reports it.
TokenStatus = Literal["active", "expired", "revoked"]
#: Which tokens a listing holds by state; ``all`` is every state.
ListStatus = Literal["active", "expired", "revoked", "all"]
#: The negative reasons that hold for a while, and so may be cached. The
#: others are answered anew each time ("malformed" from a server means it
#: disagrees with this module's format check).
CACHEABLE_REASONS: Final = frozenset({"unknown", "revoked", "expired"})


def status_of(
    revoked_at: datetime | None, expires_at: datetime | None, now: datetime
) -> TokenStatus:
    """A token's status at ``now``: revoked wins over expired."""
    if revoked_at is not None:
        return "revoked"
    if expires_at is not None and expires_at <= now:
        return "expired"
    return "active"


def iso(moment: datetime) -> str:
    """A time as the API writes it everywhere: ISO 8601 in UTC, with a ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def bearer_token(header: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer <token>`` header; None for anything else.

    The scheme is case-insensitive (RFC 7235); surrounding spaces are dropped.

    >>> bearer_token("bearer  abc "), bearer_token("Basic abc"), bearer_token(None)
    ('abc', None, None)
    """
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


# -- the embedded server's admin token file ----------------------------------------

DEFAULT_SQLITE_FILE: Final = "amplify_auth.db"
ADMIN_TOKEN_FILE_SUFFIX: Final = ".admin-token"
_SQLITE_PREFIXES: Final = ("sqlite+aiosqlite:///", "sqlite:///")


def sqlite_path(database_url: str | None) -> Path | None:
    """The SQLite file a ``DATABASE_URL`` names (unset: the default file); None for others."""
    if database_url is None:
        return Path(DEFAULT_SQLITE_FILE)
    prefix = next((p for p in _SQLITE_PREFIXES if database_url.startswith(p)), None)
    if prefix is None:
        return None
    return Path(database_url.removeprefix(prefix).split("?", 1)[0])


def admin_token_file(database_url: str | None, explicit: Path | str | None = None) -> Path | None:
    """Where the embedded server keeps the admin token it mints, beside its database.

    ``explicit`` is ``ADMIN_TOKEN_FILE`` when set. None when the database is
    not SQLite: such a server mints no file. The server writes the file and
    ``auth-cli`` reads it, both by this rule.

    >>> admin_token_file(None), admin_token_file("sqlite:///data/auth.db")
    (PosixPath('amplify_auth.admin-token'), PosixPath('data/auth.admin-token'))
    """
    if explicit is not None:
        return Path(explicit)
    database = sqlite_path(database_url)
    if database is None:
        return None
    return database.with_name(database.stem + ADMIN_TOKEN_FILE_SUFFIX)


# -- listing cursors ---------------------------------------------------------------

_CURSOR_SIGNATURE_BYTES: Final = 12


class Cursors:
    """The cursors of one installation's listings: opaque to clients, signed, bound to filters.

    A cursor holds the position its page ended at and a fingerprint of the
    filters it was made for, signed with ``key`` (something every replica of
    one installation shares). :meth:`read` refuses, with :class:`ValueError`
    saying why, a cursor that was changed, cut short, made elsewhere, for
    another listing or for other filters: a listing never takes a bad cursor
    for the first page. The signature keeps a mistake from passing, not data
    from anyone: a page holds only what its caller may list anyway.

    >>> cursors = Cursors(b"installation")
    >>> cursor = cursors.make("tokens", ["2026-01-01T00:00:00Z", "tok_0123456789abcdef"], {})
    >>> cursors.read(cursor, "tokens", {})
    ['2026-01-01T00:00:00Z', 'tok_0123456789abcdef']
    """

    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"amplify-auth cursors\0" + key).digest()

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_CURSOR_SIGNATURE_BYTES]

    @staticmethod
    def _fingerprint(filters: Mapping[str, object]) -> str:
        canonical = json.dumps(filters, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def make(self, kind: str, position: list[object], filters: Mapping[str, object]) -> str:
        payload = json.dumps([kind, position, self._fingerprint(filters)]).encode()
        raw = self._sign(payload) + payload
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def read(self, cursor: str, kind: str, filters: Mapping[str, object]) -> list[object]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise ValueError("it is not a cursor this server made") from None
        signature, payload = raw[:_CURSOR_SIGNATURE_BYTES], raw[_CURSOR_SIGNATURE_BYTES:]
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise ValueError("it is not a cursor this server made (changed, or cut short)")
        made_for, position, fingerprint = json.loads(payload)
        if made_for != kind:
            raise ValueError("it was made for another listing")
        if fingerprint != self._fingerprint(filters):
            raise ValueError("it was made for other filters: send the same filters with it")
        return list(position)
