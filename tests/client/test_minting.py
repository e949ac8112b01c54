"""Minting: every token and id is well formed, and each of their characters is drawn from
the whole alphabet (the format's entropy is what makes a token unguessable)."""

from __future__ import annotations

import string

from amplify_auth_client.contract import (
    TOKEN_ID,
    TOKEN_LENGTH,
    TOKEN_PREFIX,
    generate_token,
    new_token_id,
    token_is_well_formed,
)

DRAWS = 3000


def test_every_minted_token_is_well_formed_and_new() -> None:
    minted = [generate_token() for _ in range(DRAWS)]
    assert all(len(t) == TOKEN_LENGTH and token_is_well_formed(t) for t in minted)
    assert len(set(minted)) == DRAWS


def test_every_position_of_a_token_takes_every_character() -> None:
    # Missing one character at one position in 3000 draws has a chance of
    # (61/62)**3000, about 1e-22: a failure here is a biased draw, such as a
    # leading digit that is always small.
    random_part = [
        generate_token()[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + 37] for _ in range(DRAWS)
    ]
    alphabet = set(string.ascii_letters + string.digits)
    for position in range(37):
        assert {t[position] for t in random_part} == alphabet, position


def test_every_position_of_a_token_id_takes_every_character() -> None:
    ids = [new_token_id() for _ in range(DRAWS)]
    assert all(TOKEN_ID.fullmatch(i) for i in ids)
    assert len(set(ids)) == DRAWS
    alphabet = set(string.ascii_lowercase + string.digits)
    for position in range(4, 20):
        assert {i[position] for i in ids} == alphabet, position
