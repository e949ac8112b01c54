"""The web console: token management for people, served by the server under ``/console``.

Server-rendered pages (Jinja2), a little plain JavaScript (copy to
clipboard, select all), every asset served from this package: nothing
from another origin, no build step. On by default; ``CONSOLE_ENABLED=false``
leaves it out of the app entirely.

The console is a FastAPI app of its own, mounted in the server's, so that
its headers, its HTML error pages and its session check apply to its pages
and never to the JSON API. Its screens call the API's route functions; its
sign-in validates through the API's validator (see :mod:`._access`).
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from amplify_auth_server.console import _audit, _health, _signin, _tokens
from amplify_auth_server.console._access import COOKIE, SignInRequired, services_of
from amplify_auth_server.console._render import STATIC, page
from amplify_auth_server.console._security import HEADERS, ConsoleHeaders, clear_cookie
from amplify_auth_server.console._sessions import SessionStore
from amplify_auth_server.errors import AuthServerError

__all__ = ["PATH", "create_console"]

#: Where the server mounts the console.
PATH = "/console"


async def _sign_in_again(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    target = f"{PATH}/sign-in?ended=1" if exc.ended else f"{PATH}/sign-in"
    response = RedirectResponse(target, status_code=303)
    forced = services_of(request).settings.console_secure_cookies
    clear_cookie(response, request, COOKIE, forced_secure=forced)
    return response


def _error(request: Request, status_code: int, detail: str, lines: list[str]) -> Response:
    return page(
        request,
        "error.html",
        {"title": "Something went wrong", "detail": detail, "lines": lines},
        status_code=status_code,
    )


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthServerError)
    return _error(request, exc.status_code, exc.detail, [])


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    lines = [f"{error['loc'][-1]}: {error['msg']}" for error in exc.errors() if error.get("loc")]
    return _error(request, 422, "Some of what was asked for is not valid.", lines)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = "There is no such page." if exc.status_code == 404 else str(exc.detail)
    return _error(request, exc.status_code, detail, [])


async def _crashed(request: Request, exc: Exception) -> Response:
    # Answered outside ConsoleHeaders (by Starlette's outermost layer): the
    # headers are set here. The exception is logged by uvicorn, not shown.
    response = _error(request, 500, "The server failed to answer; nothing was shown.", [])
    for name, value in HEADERS:
        response.headers[name.decode()] = value.decode()
    return response


async def _home() -> Response:
    return RedirectResponse(f"{PATH}/tokens", status_code=303)


def create_console(server: FastAPI) -> FastAPI:
    """The console, to mount at :data:`PATH` in ``server`` (whose parts it uses)."""
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    console.state.parent = server
    console.state.sessions = SessionStore()
    console.add_api_route("/", _home, methods=["GET"], include_in_schema=False)
    for module in (_signin, _tokens, _audit, _health):
        console.include_router(module.router)
    console.mount("/static", StaticFiles(directory=STATIC), name="static")
    console.add_exception_handler(SignInRequired, _sign_in_again)
    console.add_exception_handler(AuthServerError, _refused)
    console.add_exception_handler(RequestValidationError, _invalid)
    console.add_exception_handler(HTTPException, _http)
    console.add_exception_handler(Exception, _crashed)
    console.add_middleware(ConsoleHeaders)
    return console
