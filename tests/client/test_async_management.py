"""The async client revokes in bulk and reads any iterable of scopes as the sync one does."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from amplify_auth_client import generate_token
from amplify_auth_client.testing import FakeAuthServer

pytestmark = pytest.mark.anyio


async def test_revoke_tokens_says_what_it_did_with_each_id() -> None:
    server = FakeAuthServer()
    async with server.async_client(cache_ttl=0) as auth:
        first, second = [await auth.create_token(f"bulk-{i}", ["x"]) for i in range(2)]
        await auth.revoke_token(second.token_id)
        outcome = await auth.revoke_tokens(
            [first.token_id, second.token_id, "tok_zzzzzzzzzzzzzzzz"]
        )
        assert outcome.revoked == (first.token_id,)
        assert outcome.already_revoked == (second.token_id,)
        assert outcome.not_found == ("tok_zzzzzzzzzzzzzzzz",)
        assert (await auth.validate(first.token)).reason == "revoked"


async def test_revoke_where_counts_on_a_dry_run_and_revokes_otherwise() -> None:
    server = FakeAuthServer()
    async with server.async_client(cache_ttl=0) as auth:
        doomed = [await auth.create_token(f"leaked-{i}", ["x"]) for i in range(2)]
        kept = await auth.create_token("safe", ["x"])
        assert await auth.revoke_where(name="leaked-", dry_run=True) == 2
        assert all([await auth.validate(t.token) for t in doomed])
        assert await auth.revoke_where(name="leaked-") == 2
        assert not any([await auth.validate(t.token) for t in doomed])
        assert await auth.validate(kept.token)
        assert await auth.revoke_where(scope="x", expires_within_days=1) == 0


@pytest.mark.parametrize(
    "scopes",
    [lambda: (s for s in ["admin"]), lambda: iter(["admin"]), lambda: {"admin": 1}.keys()],
    ids=["generator", "iterator", "keys view"],
)
async def test_any_iterable_of_scopes_is_judged_whole_on_a_miss_and_a_hit(
    scopes: Callable[[], Iterable[str]],
) -> None:
    # A generator used up by a first look would seem empty to the next: valid.
    server = FakeAuthServer()
    token = server.add_token("reader", ["read"]).token
    async with server.async_client() as auth:
        miss = await auth.validate(token, scopes())
        hit = await auth.validate(token, scopes())
    for result in (miss, hit):
        assert (result.valid, result.missing_scopes) == (False, ("admin",))
    assert hit.cached
    assert server.validation_requests() == 1


async def test_a_str_of_scopes_is_refused() -> None:
    server = FakeAuthServer()
    async with server.async_client() as auth:
        with pytest.raises(TypeError, match=r"\['read'\]"):
            await auth.validate(generate_token(), "read")  # type: ignore[arg-type]
    assert server.validation_requests() == 0
