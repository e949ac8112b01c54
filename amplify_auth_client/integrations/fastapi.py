"""FastAPI: a dependency that gives a route its :class:`~amplify_auth_client.Caller`.

::

    from fastapi import Depends, FastAPI
    from amplify_auth_client import Caller
    from amplify_auth_client.integrations.fastapi import RequireScopes

    app = FastAPI()

    @app.get("/orders")
    async def orders(caller: Caller = Depends(RequireScopes("orders:read"))) -> dict[str, str]:
        return {"caller": caller.name}

The dependency adds the bearer scheme to the OpenAPI document, and the
route's scopes to its ``security`` requirement. A refusal is raised as
:class:`AuthRefused`, an ``HTTPException`` with the core's status, headers
and detail: a plain app answers it in FastAPI's shape (``{"detail": ...}``),
consistent with its other errors; :func:`add_refusal_handler` makes the
body the core's (``{"error": code, "detail": ...}``), as every other
integration sends it.

Why a class whose instances are the dependency, reading ``request.headers``
itself: FastAPI's ``Header(...)`` parameters cost tens of microseconds per
request (validation, aliasing), the dependency one dictionary lookup and a
cache hit. The scheme in the signature is a dependency that does nothing:
it is there for the OpenAPI document, which reads scopes only from
``Security(...)`` markers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

try:
    from fastapi import FastAPI, HTTPException, Request, Security
    from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
    from fastapi.responses import JSONResponse, Response
    from fastapi.security.base import SecurityBase
except ImportError as exc:
    from amplify_auth_client.integrations._requires import missing

    raise missing("fastapi", exc) from None

from amplify_auth_client import Authenticator, Caller, OnOutage, Policy, Refusal

__all__ = [
    "SECURITY_SCHEME",
    "AuthRefused",
    "RequireScopes",
    "add_refusal_handler",
    "public",
    "requires",
]

#: The OpenAPI name of the bearer scheme the dependency declares.
SECURITY_SCHEME = "bearerAuth"
_DESCRIPTION = "An AMPLIfy Auth token (amp_live_...) holding the route's scopes."


class AuthRefused(HTTPException):
    """A request turned away by :class:`RequireScopes`; ``refusal`` is the core's answer."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.status, detail=refusal.detail, headers=dict(refusal.headers))
        self.refusal = refusal


class _BearerScheme(SecurityBase):
    """The bearer scheme, as OpenAPI shows it; as a dependency it does nothing."""

    def __init__(self, scheme_name: str) -> None:
        self.model = HTTPBearerModel(bearerFormat="amp_live_...", description=_DESCRIPTION)
        self.scheme_name = scheme_name

    async def __call__(self) -> None:
        return None


class RequireScopes(SecurityBase):
    """A dependency: the caller of a request whose token holds every one of ``scopes``.

    ``max_staleness``, ``on_outage`` and ``outage_grace`` are the action's
    :class:`~amplify_auth_client.Policy`. ``auth`` is the
    :class:`~amplify_auth_client.Authenticator` to use (default: the
    process's, with clients from ``AUTH_SERVICE_URL``); its realm names the
    service in ``WWW-Authenticate``.

    Itself a security scheme for OpenAPI; used as ``Depends(...)`` it also
    declares, as a second (empty) dependency, the scheme with its scopes,
    since FastAPI reads scopes only from ``Security(...)`` markers. The
    :func:`requires` form is that marker already, and so one dependency.
    """

    def __init__(
        self,
        *scopes: str,
        max_staleness: float | None = None,
        on_outage: OnOutage = "deny",
        outage_grace: float | None = None,
        auth: Authenticator | None = None,
        scheme_name: str = SECURITY_SCHEME,
        declare_scopes: bool = True,
    ) -> None:
        self.policy = Policy(
            scopes=scopes,
            max_staleness=max_staleness,
            on_outage=on_outage,
            outage_grace=outage_grace,
        )
        self.auth = auth
        self.model = HTTPBearerModel(bearerFormat="amp_live_...", description=_DESCRIPTION)
        self.scheme_name = scheme_name
        parameters = [
            inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        ]
        if declare_scopes:
            scheme = Security(_BearerScheme(scheme_name), scopes=list(self.policy.scopes))
            parameters.append(
                inspect.Parameter(
                    "_scheme", inspect.Parameter.KEYWORD_ONLY, default=scheme, annotation=None
                )
            )
        # FastAPI reads a dependency's parameters from its signature.
        self.__signature__ = inspect.Signature(parameters, return_annotation=Caller)

    def __repr__(self) -> str:
        return f"RequireScopes({self.policy.describe()})"

    async def __call__(self, *, request: Request, _scheme: None = None) -> Caller:
        auth = self.auth or Authenticator.default()
        found = await auth.authenticate_async(request.headers.getlist("authorization"), self.policy)
        if isinstance(found, Refusal):
            raise AuthRefused(found)
        return found


def requires(
    *scopes: str,
    max_staleness: float | None = None,
    on_outage: OnOutage = "deny",
    outage_grace: float | None = None,
    auth: Authenticator | None = None,
    scheme_name: str = SECURITY_SCHEME,
) -> Any:
    """``RequireScopes`` as a ready ``Security`` marker: one dependency instead of two.

    ::

        async def orders(caller: Caller = requires("orders:read")): ...
        Reader = Annotated[Caller, requires("orders:read")]

    The same check, refusals and OpenAPI document as ``Depends(RequireScopes(...))``;
    FastAPI solves one dependency fewer per request.
    """
    dependency = RequireScopes(
        *scopes,
        max_staleness=max_staleness,
        on_outage=on_outage,
        outage_grace=outage_grace,
        auth=auth,
        scheme_name=scheme_name,
        declare_scopes=False,
    )
    return Security(dependency, scopes=list(dependency.policy.scopes))


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthRefused)
    refusal = exc.refusal
    return JSONResponse(refusal.body(), status_code=refusal.status, headers=dict(refusal.headers))


def add_refusal_handler(app: FastAPI) -> None:
    """Answer :class:`AuthRefused` with the core's body, ``{"error": code, "detail": ...}``."""
    app.add_exception_handler(AuthRefused, _refused)


#: The attribute :func:`public` sets on an endpoint.
PUBLIC_MARK = "__amplify_public__"

E = TypeVar("E", bound=Callable[..., Any])


def public(endpoint: E) -> E:
    """Declare a route open to all, for ``auth-cli audit-routes`` (costs nothing per request)::

    @app.get("/health")
    @public
    async def health(): ...
    """
    setattr(endpoint, PUBLIC_MARK, True)
    return endpoint
