"""AMPLIfy Auth server: opaque tokens, hashed storage, cached validation.

Run it with ``amplify-auth-server`` (or ``python -m amplify_auth_server``),
or embed the app: ``uvicorn amplify_auth_server.app:create_app --factory``.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import redis  # noqa: F401
    import sqlalchemy  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by tests/test_extras.py
    raise ImportError(
        "amplify_auth_server needs the server extra: pip install 'amplify-auth[server]'"
    ) from exc

from amplify_auth_client import __version__
from amplify_auth_server.app import create_app
from amplify_auth_server.config import Settings

__all__ = ["Settings", "__version__", "create_app"]
