"""Django REST framework: ``AmplifyTokenAuthentication`` and ``HasScopes``.

Loaded by :mod:`amplify_auth_client.integrations.django` on first use of
these names, so that plain Django does not need DRF. The view says what it
requires, as attributes (``required_scopes``, ``max_staleness``,
``on_outage``, ``outage_grace``), and the authentication class validates the
token against that whole policy: one validation, the core's refusals.

A request without an ``Authorization`` header, or with another scheme, is
left to the next authentication class (DRF's contract); :class:`HasScopes`
then refuses it with the core's 401 and bare challenge, so that a view
protected by both answers exactly as every other integration does.
"""

from __future__ import annotations

from typing import Any, Final

from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from amplify_auth_client import Authenticator, Caller, Policy, Refusal
from amplify_auth_client._refusal import RETRY_AFTER_SECONDS
from amplify_auth_client.integrations.django import CALLER_ATTRIBUTE, authorization

__all__ = ["AmplifyTokenAuthentication", "HasScopes", "TokenUser"]

_POLICIES: Final = "_amplify_policy"


class AuthRefused(exceptions.APIException):
    """The core's refusal, raised the DRF way: its status, detail and headers."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(detail=refusal.detail, code=refusal.code)
        self.status_code = refusal.status
        self.refusal = refusal
        # DRF's exception handler sends these two as headers.
        self.auth_header = refusal.headers.get("WWW-Authenticate")
        self.wait = RETRY_AFTER_SECONDS if "Retry-After" in refusal.headers else None


class TokenUser:
    """``request.user`` for a token: authenticated, anonymous to Django's user model."""

    is_authenticated: Final = True
    is_anonymous: Final = False
    is_active: Final = True

    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self.username = caller.name
        self.pk = caller.token_id

    def __str__(self) -> str:
        return self.caller.name


def policy_of(view: Any) -> Policy:
    """The policy a DRF view's attributes state, built once per view class."""
    cached = view.__class__.__dict__.get(_POLICIES)
    if isinstance(cached, Policy):
        return cached
    policy = Policy(
        scopes=getattr(view, "required_scopes", ()),
        max_staleness=getattr(view, "max_staleness", None),
        on_outage=getattr(view, "on_outage", "deny"),
        outage_grace=getattr(view, "outage_grace", None),
    )
    setattr(view.__class__, _POLICIES, policy)
    return policy


class AmplifyTokenAuthentication(BaseAuthentication):
    """Authenticate ``Authorization: Bearer amp_live_...`` against the view's policy.

    ``auth`` (a class attribute) is the authenticator: the process's by
    default; subclass to set your own.
    """

    auth: Authenticator | None = None

    def authenticator(self) -> Authenticator:
        return self.auth or Authenticator.default()

    def authenticate(self, request: Request) -> tuple[TokenUser, Caller] | None:
        http: HttpRequest = request._request
        values = authorization(http)
        credentials = self.authenticator().credentials(values)
        if isinstance(credentials, Refusal) and credentials.status == 401:
            return None  # no bearer token: the next class may know this scheme
        view = request.parser_context.get("view") if request.parser_context else None
        found = self.authenticator().authenticate(values, policy_of(view))
        if isinstance(found, Refusal):
            raise AuthRefused(found)
        setattr(http, CALLER_ATTRIBUTE, found)
        return TokenUser(found), found

    def authenticate_header(self, request: Request) -> str:
        refusal = self.authenticator().credentials(())
        assert isinstance(refusal, Refusal)
        return refusal.headers["WWW-Authenticate"]


class HasScopes(BasePermission):
    """Only callers authenticated by :class:`AmplifyTokenAuthentication`; it checked the
    view's ``required_scopes`` already. Anyone else gets the core's 401."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, Caller):
            return True
        # The view's own authentication class knows the authenticator (and realm).
        ours = [a for a in request.authenticators if isinstance(a, AmplifyTokenAuthentication)]
        authentication = ours[0] if ours else AmplifyTokenAuthentication()
        refusal = authentication.authenticator().credentials(())
        assert isinstance(refusal, Refusal)
        raise AuthRefused(refusal)
