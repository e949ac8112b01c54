"""The apps of ``service_echo.py``, each served by the same uvicorn options.

    python benchmarks/echo_apps.py {bare,dependency,requires,middleware,example} PORT

* ``bare``: the example's ``POST /echo`` handler in a bare FastAPI app, no
  authentication (the baseline of both comparisons).
* ``dependency``: the same route behind ``Depends(RequireScopes("read"))``.
* ``requires``: the same behind ``requires("read")``, the one-dependency form.
* ``middleware``: the bare app behind ``AuthMiddleware(scopes=["read"])``.
* ``example``: ``examples/authenticated_service/app.py``, a StatelessService.

One process each, uvloop and httptools, no access log, no server header: the
options of the issue's first measurement.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, Request

from amplify_auth_client import Caller
from amplify_auth_client.integrations.asgi import AuthMiddleware, caller_of
from amplify_auth_client.integrations.fastapi import RequireScopes, requires

ROOT = Path(__file__).resolve().parent.parent


async def _echoed(request: Request, name: str) -> dict[str, Any]:
    """The example's echo: the JSON body received, and the caller's name."""
    body = await request.body()
    return {"echo": await request.json() if body else None, "token_name": name}


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    return app


def bare() -> FastAPI:
    app = _app()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        return await _echoed(request, "bench")

    return app


def dependency() -> FastAPI:
    app = _app()

    @app.post("/echo")
    async def echo(
        request: Request, caller: Caller = Depends(RequireScopes("read"))
    ) -> dict[str, Any]:
        return await _echoed(request, caller.name)

    return app


def requires_form() -> FastAPI:
    app = _app()

    @app.post("/echo")
    async def echo(request: Request, caller: Caller = requires("read")) -> dict[str, Any]:
        return await _echoed(request, caller.name)

    return app


def middleware() -> Any:
    app = _app()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        return await _echoed(request, caller_of(request.scope).name)

    return AuthMiddleware(app, scopes=["read"], public=["/health"])


def example() -> Any:
    spec = importlib.util.spec_from_file_location(
        "example_app", ROOT / "examples/authenticated_service/app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


if __name__ == "__main__":
    apps = {
        "bare": bare,
        "dependency": dependency,
        "requires": requires_form,
        "middleware": middleware,
        "example": example,
    }
    app = apps[sys.argv[1]]()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[2]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        server_header=False,
    )
