"""Every error of the tree pickles with its message and attributes (Celery, process pools)."""

from __future__ import annotations

import pickle

import pytest

import amplify_auth_client
from amplify_auth_client import (
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

ERRORS = [
    AuthError("base"),
    AuthConfigError("no base_url"),
    AuthServiceUnavailable("down", status_code=503),
    AuthServiceUnavailable("unreachable"),
    TokenAlreadyCreated("made earlier", token_id="tok_aaaaaaaaaaaaaaaa"),
    *(
        error_type(
            "the server's explanation",
            status_code=status,
            code="a_code",
            errors=[{"loc": ["body", "scopes", 0], "msg": "bad", "type": "x"}],
        )
        for error_type, status in [
            (AuthRequestError, 302),
            (AdminTokenInvalid, 401),
            (AdminPermissionDenied, 403),
            (TokenNotFound, 404),
            (TokenConflict, 409),
            (InvalidRequest, None),
        ]
    ),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_survives_pickling(error: AuthError) -> None:
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.args == error.args
    assert vars(copy) == vars(error)


def test_the_list_above_covers_the_whole_tree() -> None:
    exported = {
        value
        for value in vars(amplify_auth_client).values()
        if isinstance(value, type) and issubclass(value, AuthError)
    }
    assert exported == {type(error) for error in ERRORS}
