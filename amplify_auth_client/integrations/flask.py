"""Flask: a ``require_scopes`` view decorator, and an extension object holding the authenticator.

::

    from flask import Flask
    from amplify_auth_client.integrations.flask import AmplifyAuth, current_caller, require_scopes

    app = Flask(__name__)
    AmplifyAuth(app, realm="orders")          # optional: the default reads AUTH_SERVICE_URL

    @app.get("/orders")
    @require_scopes("orders:read")
    def orders():
        return {"caller": current_caller().name}

The view runs only for a token holding the scopes; :func:`current_caller`
gives it the :class:`~amplify_auth_client.Caller` (kept in ``flask.g``). A
refusal is the core's response, sent instead of the view. Sync views use the
process's sync client (one per process, shared by every worker thread);
async views (Flask runs each in an event loop of its own) answer a cache hit
in their loop and send a miss to a worker thread, so that they share that
same client and cache.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Final, ParamSpec, TypeVar, cast

try:
    import flask
except ImportError as exc:
    from amplify_auth_client.integrations._requires import missing

    raise missing("flask", exc) from None

from amplify_auth_client import Authenticator, Caller, OnOutage, Policy, Refusal

__all__ = ["EXTENSION", "AmplifyAuth", "current_caller", "require_scopes"]

P = ParamSpec("P")
R = TypeVar("R")

#: The key of :class:`AmplifyAuth` in ``app.extensions``.
EXTENSION: Final = "amplify_auth"
_CALLER: Final = "amplify_auth_caller"


class AmplifyAuth:
    """The extension: which :class:`~amplify_auth_client.Authenticator` an app's views use.

    ``AmplifyAuth(app)`` or ``AmplifyAuth().init_app(app)`` (application
    factories); ``auth`` is an authenticator of yours, else one is built
    with ``realm`` and clients from the environment. Without the extension,
    views use the process's default authenticator.
    """

    def __init__(
        self,
        app: flask.Flask | None = None,
        *,
        realm: str | None = None,
        auth: Authenticator | None = None,
    ) -> None:
        self.auth = auth if auth is not None else Authenticator(realm=realm)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        app.extensions[EXTENSION] = self


def _authenticator() -> Authenticator:
    extension = flask.current_app.extensions.get(EXTENSION)
    return extension.auth if isinstance(extension, AmplifyAuth) else Authenticator.default()


def current_caller() -> Caller:
    """The caller of the request being handled, as :func:`require_scopes` authenticated it."""
    caller = flask.g.get(_CALLER)
    if not isinstance(caller, Caller):
        raise RuntimeError("current_caller() is for views decorated with @require_scopes(...)")
    return caller


def _refused(refusal: Refusal) -> flask.Response:
    return flask.Response(
        refusal.json(),
        status=refusal.status,
        headers=dict(refusal.headers),
        mimetype="application/json",
    )


def require_scopes(
    *scopes: str,
    max_staleness: float | None = None,
    on_outage: OnOutage = "deny",
    outage_grace: float | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R | flask.Response]]:
    """Open the view only to tokens holding every one of ``scopes``.

    ``max_staleness``, ``on_outage`` and ``outage_grace``: the view's
    :class:`~amplify_auth_client.Policy`.
    """
    policy = Policy(
        scopes=scopes, max_staleness=max_staleness, on_outage=on_outage, outage_grace=outage_grace
    )

    def decorate(view: Callable[P, R]) -> Callable[P, R | flask.Response]:
        if inspect.iscoroutinefunction(view):
            async_view = cast(Callable[P, Awaitable[Any]], view)

            @functools.wraps(view)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                values = flask.request.headers.getlist("Authorization")
                found = await _authenticator().authenticate_in_thread(values, policy)
                if isinstance(found, Refusal):
                    return _refused(found)
                setattr(flask.g, _CALLER, found)
                return await async_view(*args, **kwargs)

            return cast(Callable[P, R | flask.Response], async_wrapper)

        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | flask.Response:
            values = flask.request.headers.getlist("Authorization")
            found = _authenticator().authenticate(values, policy)
            if isinstance(found, Refusal):
                return _refused(found)
            setattr(flask.g, _CALLER, found)
            return view(*args, **kwargs)

        return wrapper

    return decorate
