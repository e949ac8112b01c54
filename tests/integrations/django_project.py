"""A real Django project for the tests: settings configured here, once per process, and urls.

Django's settings are process-wide and can be configured once; every test
module (and the docs' Django page, in a process of its own) goes through
:func:`configure`. The URL patterns are set by :func:`install`, so that each
test module serves views wired to its own authenticators.
"""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, clear_url_caches, path

from amplify_auth_client import Authenticator

urlpatterns: list[URLPattern] = []


def configure() -> None:
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="tests-only-not-a-secret",
            ROOT_URLCONF=__name__,
            ALLOWED_HOSTS=["127.0.0.1", "localhost", "testserver"],
            INSTALLED_APPS=["rest_framework"],
            MIDDLEWARE=[],
            REST_FRAMEWORK={
                "UNAUTHENTICATED_USER": None,
                "DEFAULT_AUTHENTICATION_CLASSES": [],
                "DEFAULT_PERMISSION_CLASSES": [],
                "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
            },
        )
        django.setup()


def install(auth: Authenticator, prefix: str) -> None:
    """Serve the three kinds of view (sync, async, DRF) under ``prefix/``, behind ``auth``."""
    configure()
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from amplify_auth_client.integrations.django import (
        AmplifyTokenAuthentication,
        HasScopes,
        caller_of,
        require_scopes,
    )

    @require_scopes("orders:read", auth=auth)
    def sync_orders(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"caller": caller_of(request).name})

    @require_scopes("orders:read", auth=auth)
    async def async_orders(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"caller": caller_of(request).name})

    class Authentication(AmplifyTokenAuthentication):
        pass

    Authentication.auth = auth

    class Orders(APIView):  # type: ignore[misc]
        authentication_classes = (Authentication,)
        permission_classes = (HasScopes,)
        required_scopes = ("orders:read",)

        def get(self, request: Any) -> Response:
            return Response({"caller": request.auth.name, "user": str(request.user)})

    urlpatterns[:] = [p for p in urlpatterns if not str(p.pattern).startswith(f"{prefix}/")]
    urlpatterns.extend(
        [
            path(f"{prefix}/sync/orders", sync_orders),
            path(f"{prefix}/async/orders", async_orders),
            path(f"{prefix}/drf/orders", Orders.as_view()),
        ]
    )
    clear_url_caches()
