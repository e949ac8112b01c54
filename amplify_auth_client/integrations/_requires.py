"""The message of an integration imported without its framework: which extra to install.

Each integration is an extra (``pip install 'amplify-auth[flask]'``), so the
base install stays the slim SDK. Imported without its framework, an
integration raises an :class:`ImportError` whose message is the install
command, with no chain of tracebacks through our modules::

    try:
        import flask
    except ImportError as exc:
        raise missing("flask", exc) from None
"""

from __future__ import annotations

from typing import Final

#: The extra that brings each integration's framework.
EXTRAS: Final = {
    "fastapi": "fastapi",
    "django": "django",
    "drf": "drf",
    "flask": "flask",
    "grpc": "grpc",
    "otel": "otel",
}


def missing(integration: str, exc: ImportError) -> ImportError:
    """The ImportError to raise instead of ``exc``, saying what to install."""
    needed = (exc.name or "its framework").split(".")[0]
    return ImportError(
        f"amplify_auth_client.integrations.{integration} needs {needed}, which is not "
        f"installed: pip install 'amplify-auth[{EXTRAS[integration]}]'"
    )
