"""Django: a view decorator for plain Django, and (with DRF) an authentication class and a
scope permission.

::

    from django.http import JsonResponse
    from amplify_auth_client.integrations.django import caller_of, require_scopes

    @require_scopes("orders:read")
    def orders(request):                      # or `async def`
        return JsonResponse({"caller": caller_of(request).name})

With Django REST framework (``pip install 'amplify-auth[drf]'``)::

    from amplify_auth_client.integrations.django import AmplifyTokenAuthentication, HasScopes

    class Orders(APIView):
        authentication_classes = [AmplifyTokenAuthentication]
        permission_classes = [HasScopes]
        required_scopes = ["orders:read"]     # and max_staleness, on_outage, outage_grace

The caller is ``request.amplify_caller`` (:func:`caller_of`); under DRF also
``request.auth``, with ``request.user`` a :class:`TokenUser`. Refusals are the
core's; DRF answers them in its own shape (``{"detail": ...}``) with the
core's status and headers. The DRF names load DRF on first use, so plain
Django needs only the ``[django]`` extra.

Sync views use the process's sync client (shared by every worker thread);
async views answer a cache hit in their loop and send a miss to a worker
thread: Django runs async views in a loop per request under WSGI, and this
way every view of the process shares one client and one cache.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Concatenate, Final, ParamSpec, TypeVar, cast

try:
    from django.http import HttpRequest, HttpResponse, JsonResponse
except ImportError as exc:
    from amplify_auth_client.integrations._requires import missing

    raise missing("django", exc) from None

from amplify_auth_client import Authenticator, Caller, OnOutage, Policy, Refusal

if TYPE_CHECKING:
    from amplify_auth_client.integrations._drf import (
        AmplifyTokenAuthentication,
        HasScopes,
        TokenUser,
    )

__all__ = [
    "CALLER_ATTRIBUTE",
    "AmplifyTokenAuthentication",
    "HasScopes",
    "TokenUser",
    "authorization",
    "caller_of",
    "refused",
    "require_scopes",
]

P = ParamSpec("P")
R = TypeVar("R", bound=HttpResponse)

#: The request attribute that holds the caller.
CALLER_ATTRIBUTE: Final = "amplify_caller"
_DRF: Final = frozenset({"AmplifyTokenAuthentication", "HasScopes", "TokenUser"})


def __getattr__(name: str) -> object:
    # DRF's names load DRF, which plain Django projects do not have.
    if name not in _DRF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        drf = importlib.import_module("amplify_auth_client.integrations._drf")
    except ImportError as exc:
        from amplify_auth_client.integrations._requires import missing

        raise missing("drf", exc) from None
    return getattr(drf, name)


def authorization(request: HttpRequest) -> tuple[str, ...]:
    """The request's ``Authorization`` values (a WSGI server folds repeated ones into one)."""
    value = request.META.get("HTTP_AUTHORIZATION")
    return () if value is None else (value,)


def caller_of(request: HttpRequest) -> Caller:
    """The caller :func:`require_scopes` (or DRF's authentication) found for ``request``."""
    caller = getattr(request, CALLER_ATTRIBUTE, None)
    if not isinstance(caller, Caller):
        raise RuntimeError("caller_of() is for views decorated with @require_scopes(...)")
    return caller


def refused(refusal: Refusal) -> JsonResponse:
    """The core's refusal as a Django response."""
    return JsonResponse(refusal.body(), status=refusal.status, headers=dict(refusal.headers))


def require_scopes(
    *scopes: str,
    max_staleness: float | None = None,
    on_outage: OnOutage = "deny",
    outage_grace: float | None = None,
    auth: Authenticator | None = None,
) -> Callable[
    [Callable[Concatenate[HttpRequest, P], Any]], Callable[Concatenate[HttpRequest, P], Any]
]:
    """Open the view (sync or async) only to tokens holding every one of ``scopes``."""
    policy = Policy(
        scopes=scopes, max_staleness=max_staleness, on_outage=on_outage, outage_grace=outage_grace
    )

    def decorate(
        view: Callable[Concatenate[HttpRequest, P], Any],
    ) -> Callable[Concatenate[HttpRequest, P], Any]:
        if inspect.iscoroutinefunction(view):
            async_view = cast(Callable[Concatenate[HttpRequest, P], Awaitable[Any]], view)

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> Any:
                found = await (auth or Authenticator.default()).authenticate_in_thread(
                    authorization(request), policy
                )
                if isinstance(found, Refusal):
                    return refused(found)
                setattr(request, CALLER_ATTRIBUTE, found)
                return await async_view(request, *args, **kwargs)

            return cast(Callable[Concatenate[HttpRequest, P], Any], async_wrapper)

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> Any:
            found = (auth or Authenticator.default()).authenticate(authorization(request), policy)
            if isinstance(found, Refusal):
                return refused(found)
            setattr(request, CALLER_ATTRIBUTE, found)
            return view(request, *args, **kwargs)

        return cast(Callable[Concatenate[HttpRequest, P], Any], wrapper)

    return decorate
