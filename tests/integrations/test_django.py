"""Django and DRF: the view's policy attributes, the caller on the request, the DRF user."""

from __future__ import annotations

from typing import Any

import pytest

from amplify_auth_client import Authenticator
from amplify_auth_client.pytest_plugin import TokenFactory
from amplify_auth_client.testing import FakeAuthServer
from tests.integrations import django_project


@pytest.fixture
def client(amplify_auth_server: FakeAuthServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AUTH_CACHE_TTL", "30")  # on, as in production
    django_project.configure()
    from django.http import HttpRequest, JsonResponse
    from django.test import Client
    from django.urls import path
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from amplify_auth_client.integrations.django import (
        AmplifyTokenAuthentication,
        HasScopes,
        require_scopes,
    )

    class Refunds(APIView):  # type: ignore[misc]
        authentication_classes = (AmplifyTokenAuthentication,)
        permission_classes = (HasScopes,)
        required_scopes = ("refunds:write",)
        max_staleness = 0

        def post(self, request: Any) -> Response:
            return Response({"user": str(request.user), "id": request.user.pk})

    @require_scopes()
    def anyone(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"ok": True})

    django_project.install(Authenticator.default(), "plugin")
    django_project.urlpatterns.append(path("plugin/refunds", Refunds.as_view()))
    django_project.urlpatterns.append(path("plugin/anyone", anyone))
    return Client()


def test_a_drf_view_with_max_staleness_zero_asks_every_time(
    client: Any, amplify_auth_server: FakeAuthServer, amplify_token: TokenFactory
) -> None:
    created = amplify_token(scopes=["refunds:write"], name="refunder")
    for _ in range(2):
        response = client.post("/plugin/refunds", HTTP_AUTHORIZATION=f"Bearer {created.token}")
        assert response.json() == {"user": "refunder", "id": created.token_id}
    assert amplify_auth_server.validation_requests() == 2


def test_a_plain_view_caches_and_needs_only_a_valid_token(
    client: Any, amplify_auth_server: FakeAuthServer, amplify_token: TokenFactory
) -> None:
    token = amplify_token(scopes=[]).token
    for _ in range(2):
        assert client.get("/plugin/anyone", HTTP_AUTHORIZATION=f"Bearer {token}").json() == {
            "ok": True
        }
    assert amplify_auth_server.validation_requests() == 1


def test_caller_of_outside_a_decorated_view_says_so(client: Any) -> None:
    from django.test import RequestFactory

    from amplify_auth_client.integrations.django import caller_of

    with pytest.raises(RuntimeError, match="require_scopes"):
        caller_of(RequestFactory().get("/"))
