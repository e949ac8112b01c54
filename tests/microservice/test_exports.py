"""stateless_microservice re-exports the SDK's clients, as the seed imports them."""

from __future__ import annotations

import amplify_auth_client
import stateless_microservice


def test_the_seed_import_gives_the_sdk_client() -> None:
    from stateless_microservice import AuthClient

    assert AuthClient is amplify_auth_client.AuthClient
    assert stateless_microservice.AsyncAuthClient is amplify_auth_client.AsyncAuthClient
    assert stateless_microservice.__all__ == sorted(stateless_microservice.__all__)
