"""The console's pages: Jinja2 templates shipped in the package, escaped throughout.

Autoescaping is on for every template (not only ``.html`` ones), so every
value a user typed (a token's name, description, metadata) is text on the
page, never markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from amplify_auth_client import __version__
from amplify_auth_client.contract import MIN_FINISH_WHEN_IDLE_SECONDS
from amplify_auth_server.console._views import EXPIRING_DAYS, EXPIRING_USED_DAYS, when

HERE: Final = Path(__file__).parent
STATIC: Final = HERE / "static"

_ENV: Final = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["when"] = when
_ENV.globals["version"] = __version__
_ENV.globals["expiring_days"] = EXPIRING_DAYS
_ENV.globals["expiring_used_days"] = EXPIRING_USED_DAYS
_ENV.globals["min_idle"] = MIN_FINISH_WHEN_IDLE_SECONDS


def page(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """``template`` rendered with ``context``; the base template needs ``signed_in``
    (None on pages for visitors) and ``csrf``."""
    values: dict[str, Any] = {"signed_in": None, "csrf": "", "flash": None, "title": ""}
    values.update(context or {})
    values["request_path"] = request.url.path
    html = _ENV.get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code)
