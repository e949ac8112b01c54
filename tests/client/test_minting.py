"""Minting: every token and id is well formed, and each of their characters is drawn from
the whole alphabet (the format's entropy is what makes a token unguessable)."""

from __future__ import annotations

import string
from collections import Counter

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


def test_every_character_of_a_token_is_equally_likely() -> None:
    # Rejection sampling keeps the draw uniform; a plain modulo of random
    # bytes would make 8 characters of the base-62 alphabet 21 % likelier
    # than the average (5/256 against 4.13/256). 370,000 characters: each is
    # expected 5,968 times, give or take 77 (1.3 %); the 10 % margin is
    # 7.7 of those.
    tokens = 10_000
    drawn = Counter(
        character
        for _ in range(tokens)
        for character in generate_token()[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + 37]
    )
    expected = tokens * 37 / 62
    assert len(drawn) == 62
    assert min(drawn.values()) > 0.9 * expected
    assert max(drawn.values()) < 1.1 * expected


def test_every_character_of_a_token_id_is_equally_likely() -> None:
    # Base 36: a plain modulo would make 4 characters 12.5 % likelier than
    # the average. 320,000 characters, 8,889 each, give or take 93 (1 %);
    # the 6 % margin is 5.7 of those.
    ids = 20_000
    drawn = Counter(character for _ in range(ids) for character in new_token_id()[4:])
    expected = ids * 16 / 36
    assert len(drawn) == 36
    assert min(drawn.values()) > 0.94 * expected
    assert max(drawn.values()) < 1.06 * expected
