"""Flask: the extension for application factories, the caller outside a decorated view."""

from __future__ import annotations

import flask
import pytest

from amplify_auth_client import Authenticator
from amplify_auth_client.integrations.flask import AmplifyAuth, current_caller, require_scopes
from amplify_auth_client.pytest_plugin import TokenFactory
from amplify_auth_client.testing import FakeAuthServer


def create_app(auth: AmplifyAuth) -> flask.Flask:
    app = flask.Flask("orders")
    auth.init_app(app)

    @app.get("/orders")
    @require_scopes("orders:read", max_staleness=0)
    def orders() -> dict[str, str]:
        return {"caller": current_caller().name}

    return app


def test_the_extension_serves_an_application_factory(
    amplify_auth_server: FakeAuthServer, amplify_token: TokenFactory
) -> None:
    extension = AmplifyAuth(realm="orders")
    app = create_app(extension)
    assert app.extensions["amplify_auth"] is extension
    token = amplify_token(scopes=["orders:read"], name="reader").token
    with app.test_client() as client:
        for _ in range(2):
            ok = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
            assert ok.get_json() == {"caller": "reader"}
        refused = client.get("/orders")
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="orders"'
    assert amplify_auth_server.validation_requests() == 2  # max_staleness=0
    extension.auth.close()


def test_current_caller_outside_a_decorated_view_says_so() -> None:
    with (
        flask.Flask("x").test_request_context(),
        pytest.raises(RuntimeError, match="require_scopes"),
    ):
        current_caller()


def test_without_the_extension_views_use_the_process_default(
    amplify_auth_server: FakeAuthServer, amplify_token: TokenFactory
) -> None:
    app = flask.Flask("plain")

    @app.get("/orders")
    @require_scopes("orders:read")
    def orders() -> dict[str, str]:
        return {"caller": current_caller().name}

    token = amplify_token(scopes=["orders:read"], name="reader").token
    with app.test_client() as client:
        assert (
            client.get("/orders", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        )
    assert Authenticator.default().realm is None
