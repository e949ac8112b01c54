"""Declare service endpoints as actions; authentication and scopes come for free.

The action framework itself is still to come (see the changelog); for now
this package re-exports the SDK's clients, so that the seed's
``from stateless_microservice import AuthClient`` already works.
"""

from amplify_auth_client import AsyncAuthClient, AuthClient

__all__ = ["AsyncAuthClient", "AuthClient"]
