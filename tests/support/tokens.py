"""Token values that are wrong in exactly one known way."""

from __future__ import annotations


def with_a_bad_checksum(token: str) -> str:
    """``token`` with its last character swapped for another, never for itself.

    Appending a fixed character to ``token[:-1]`` keeps the token valid one
    time in 62, when it already ended in that character: a flaky test.
    """
    return token[:-1] + ("y" if token.endswith("x") else "x")
