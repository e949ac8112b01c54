"""One table of requests through every integration: they accept and refuse alike, to the letter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from amplify_auth_client import Authenticator, Refusal
from amplify_auth_client._refusal import (
    ambiguous_credentials,
    auth_unavailable,
    insufficient_scope,
    invalid_token,
    missing_token,
)
from tests.integrations.apps import REALM, SCOPE, TARGETS, Headers, Outcome, Target
from tests.integrations.conftest import Tokens


@dataclass(frozen=True)
class Served:
    up: Callable[[Headers], Outcome]
    down: Callable[[Headers], Outcome]
    target: Target


@pytest.fixture(scope="module", params=TARGETS, ids=[t.name for t in TARGETS])
def served(
    request: pytest.FixtureRequest, up: Authenticator, down: Authenticator
) -> Iterator[Served]:
    target: Target = request.param
    with target.serve(up) as call_up, target.serve(down) as call_down:
        yield Served(call_up, call_down, target)


def bearer(token: str) -> Headers:
    return [("Authorization", f"Bearer {token}")]


@dataclass(frozen=True)
class Case:
    name: str
    headers: Callable[[Tokens, str], Headers]
    expected: Refusal | str  # the refusal, or the caller's name
    down: bool = False


CASES = [
    Case("valid", lambda t, u: bearer(t.reader), "reader"),
    Case("no header", lambda t, u: [], missing_token(REALM)),
    Case(
        "two headers",
        lambda t, u: bearer(t.reader) + bearer(t.reader),
        ambiguous_credentials(REALM),
    ),
    Case(
        "not bearer", lambda t, u: [("Authorization", "Basic dXNlcjpwYXNz")], missing_token(REALM)
    ),
    Case("malformed", lambda t, u: bearer("amp_live_nope"), invalid_token(REALM, "malformed")),
    Case("unknown", lambda t, u: bearer(u), invalid_token(REALM, "unknown")),
    Case("revoked", lambda t, u: bearer(t.revoked), invalid_token(REALM, "revoked")),
    Case("expired", lambda t, u: bearer(t.expired), invalid_token(REALM, "expired")),
    Case(
        "insufficient scope",
        lambda t, u: bearer(t.other),
        insufficient_scope(REALM, [SCOPE], [SCOPE]),
    ),
    Case("auth server down", lambda t, u: bearer(t.reader), auth_unavailable(), down=True),
]


def expected_outcome(case: Case, target: Target) -> Outcome:
    if isinstance(case.expected, str):
        return Outcome(200, caller=case.expected)
    refusal = case.expected
    return Outcome(
        refusal.status,
        challenge=refusal.headers.get("WWW-Authenticate"),
        retry_after=refusal.headers.get("Retry-After"),
        detail=refusal.detail,
        # Where the framework shapes the body, the core's code is not in it.
        code=refusal.code if target.ours else None,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_integration_answers_alike(
    served: Served, case: Case, tokens: Tokens, unknown_token: str
) -> None:
    call = served.down if case.down else served.up
    assert call(case.headers(tokens, unknown_token)) == expected_outcome(case, served.target)


def test_the_table_states_rfc_6750_to_the_letter() -> None:
    # The expected values come from the core; here, once, what they say.
    assert missing_token(REALM).headers == {"WWW-Authenticate": 'Bearer realm="shop"'}
    revoked = invalid_token(REALM, "revoked")
    assert (revoked.status, revoked.headers["WWW-Authenticate"]) == (
        401,
        'Bearer realm="shop", error="invalid_token", '
        'error_description="the bearer token has been revoked"',
    )
    scope = insufficient_scope(REALM, [SCOPE], [SCOPE])
    assert scope.headers["WWW-Authenticate"] == (
        'Bearer realm="shop", error="insufficient_scope", scope="orders:read"'
    )
    assert auth_unavailable().headers == {"Retry-After": "5"}
    assert ambiguous_credentials(REALM).status == 400
