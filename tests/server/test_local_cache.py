"""The server's in-process cache never lets an older state replace a newer one, takes
any key without raising, and counts known and unknown tokens alike."""

from __future__ import annotations

from amplify_auth_client import hash_token
from amplify_auth_server.cache import UNKNOWN, LocalCache, TokenState

KEY = hash_token("amp_live_" + "k" * 43)


def state(version: int, *, revoked: bool = False) -> TokenState:
    return TokenState(version=version, token_id="tok_0123456789abcdef", name="n",
                      scopes=("read",), revoked=revoked)  # fmt: skip


def test_a_late_older_state_never_replaces_a_newer_one() -> None:
    # A lookup that read "active" lands after the revoke was cached: the revoke stays.
    local = LocalCache(maxsize=10, ttl=30, negative_ttl=5)
    revoked = local.put(KEY, state(2, revoked=True))
    assert local.put(KEY, state(1)) is revoked
    held = local.get(KEY)
    assert held is not None
    assert (held.version, held.revoked) == (2, True)


def test_any_key_is_taken_even_one_that_is_not_a_hash() -> None:
    local = LocalCache(maxsize=10, ttl=30, negative_ttl=5)
    for key in ("not-hex", "\udcff"):
        local.put(key, UNKNOWN)
        assert local.get(key) is UNKNOWN
    local.evict("not-hex")
    assert local.get("not-hex") is None


def test_its_length_counts_known_and_unknown_tokens() -> None:
    local = LocalCache(maxsize=10, ttl=30, negative_ttl=5)
    local.put(KEY, state(1))
    local.put(hash_token("amp_live_" + "u" * 43), UNKNOWN)
    assert len(local) == 2
    local.clear()
    assert len(local) == 0
