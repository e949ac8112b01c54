"""``auth-cli audit-routes MODULE:APP``: every route of an app, and what it requires.

For CI: exits 1 when a route is neither protected nor declared public, so
that a route added without a thought for its access fails the build, not
production. What counts:

- **protected**: a FastAPI route whose dependencies include
  ``RequireScopes``; a path behind ``AuthMiddleware`` (not in its
  ``public``); a ``StatelessService`` action with ``required_scopes``;
- **public (declared)**: a FastAPI endpoint marked with
  ``integrations.fastapi.public``; a path in ``AuthMiddleware``'s
  ``public``; a ``StatelessService`` action without scopes; FastAPI's own
  documentation routes (``/openapi.json``, ``/docs``, ``/redoc``);
- **UNPROTECTED**: anything else.

It imports the app as uvicorn would (the current directory first on
``sys.path``) and reads its routes; nothing is served, no request is sent.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from amplify_auth_client._cli._errors import FAILED, OK, USAGE, CLIError

__all__ = ["Route", "audit", "load", "run"]


@dataclass(frozen=True)
class Route:
    """One route: its methods and path, and what it requires."""

    methods: str
    path: str
    access: str  # "protected", "public" or "unprotected"
    requires: str  # the policy in words, or why it is public

    @property
    def ok(self) -> bool:
        return self.access != "unprotected"


def load(target: str) -> Any:
    """The object ``MODULE:ATTRIBUTE`` names, imported as uvicorn imports an app."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise CLIError(
            f"write the app as MODULE:APP (e.g. myservice.main:app), got {target!r}", USAGE
        )
    sys.path.insert(0, str(Path.cwd()))
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CLIError(f"cannot import {module_name}: {exc}", USAGE) from None
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise CLIError(f"{module_name} has no {attribute}", USAGE) from None
    return value


def audit(app: Any) -> list[Route]:
    """Every route of ``app`` (FastAPI, Starlette, or either inside ``AuthMiddleware``)."""
    from amplify_auth_client.integrations.asgi import AuthMiddleware

    guards: list[AuthMiddleware] = []
    while isinstance(app, AuthMiddleware):
        guards.append(app)
        app = app.app
    guards += [_built(m) for m in getattr(app, "user_middleware", ()) if m.cls is AuthMiddleware]
    fronts = [m for m in getattr(app, "user_middleware", ()) if m.cls.__name__ == "ActionFront"]
    actions = {}
    for front in fronts:
        for action, _ in front.kwargs["routes"]:
            actions[(action.method, action.path)] = action
    router = getattr(app, "router", app)
    docs = {getattr(app, name, None) for name in ("openapi_url", "docs_url", "redoc_url")}
    docs.add(getattr(app, "swagger_ui_oauth2_redirect_url", None))
    return [
        _judge(path, methods, endpoint, route, guards, actions, docs)
        for path, methods, endpoint, route in _walk(getattr(router, "routes", ()), "")
    ]


def _built(middleware: Any) -> Any:
    from amplify_auth_client.integrations.asgi import AuthMiddleware

    return AuthMiddleware(lambda *a: None, **middleware.kwargs)  # type: ignore[arg-type]


def _walk(routes: Any, prefix: str) -> Iterator[tuple[str, str, Any, Any]]:
    for route in routes:
        path = prefix + getattr(route, "path", "")
        if hasattr(route, "routes") and not hasattr(route, "endpoint"):  # a Mount
            yield from _walk(route.routes, path)
            continue
        methods = sorted(getattr(route, "methods", None) or {"WEBSOCKET"})
        yield (
            path,
            " ".join(m for m in methods if m != "HEAD"),
            getattr(route, "endpoint", None),
            route,
        )


def _judge(
    path: str,
    methods: str,
    endpoint: Any,
    route: Any,
    guards: list[Any],
    actions: dict[tuple[str, str], Any],
    docs: set[Any],
) -> Route:
    from amplify_auth_client.integrations.fastapi import PUBLIC_MARK, RequireScopes

    for method in methods.split():
        action = actions.get((method, path))
        if action is not None:
            if action.public:
                return Route(methods, path, "public", "StatelessAction without scopes")
            return Route(methods, path, "protected", action.policy.describe())
    dependant = getattr(route, "dependant", None)
    found = [d.call for d in _dependencies(dependant) if isinstance(d.call, RequireScopes)]
    if found:
        return Route(methods, path, "protected", "; ".join(r.policy.describe() for r in found))
    for guard in guards:
        if guard.is_public(path):
            return Route(methods, path, "public", "AuthMiddleware public")
        return Route(methods, path, "protected", f"AuthMiddleware: {guard.policy.describe()}")
    if getattr(endpoint, PUBLIC_MARK, False):
        return Route(methods, path, "public", "@public")
    if path in docs:
        return Route(methods, path, "public", "FastAPI documentation")
    return Route(methods, path, "unprotected", "neither protected nor declared public")


def _dependencies(dependant: Any) -> Iterator[Any]:
    if dependant is None:
        return
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)


def run(target: str, *, as_json: bool) -> int:
    """Print the audit of ``target``; OK when every route is protected or declared public."""
    routes = audit(load(target))
    if as_json:
        json.dump([asdict(r) for r in routes], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        width = max((len(r.methods) for r in routes), default=0)
        span = max((len(r.path) for r in routes), default=0)
        for r in routes:
            mark = "UNPROTECTED" if not r.ok else r.access
            sys.stdout.write(f"{r.methods:<{width}}  {r.path:<{span}}  {mark:<11}  {r.requires}\n")
    bad = [r for r in routes if not r.ok]
    if bad:
        sys.stderr.write(
            f"{len(bad)} route(s) neither protected nor declared public: protect them "
            "(RequireScopes, AuthMiddleware) or declare them public (@public)\n"
        )
        return FAILED
    return OK
