"""The authenticated service example: three actions, one public, two behind scopes.

Run it against an auth server (see README.md beside this file)::

    AUTH_SERVICE_URL=http://127.0.0.1:8000 PORT=8001 python examples/authenticated_service/app.py

- ``GET /health``: no token; answers even while the auth service is down.
- ``POST /echo``: needs ``read``; returns the JSON body it got and the caller's token name.
- ``POST /process``: needs ``read`` and ``write``; upper-cases ``{"text": ...}``.

Settings, from the environment: ``AUTH_SERVICE_URL`` (required), ``AUTH_CACHE_TTL``
(seconds a validation is reused, default 30), ``HOST`` (default 127.0.0.1) and
``PORT`` (default 8000). A revoked token is refused within milliseconds: the
SDK follows the auth server's revocation events and evicts it from its cache;
``AUTH_CACHE_TTL`` bounds how long it still works only while that stream is down.
"""

from __future__ import annotations

from typing import Any

from stateless_microservice import (
    ActionError,
    ActionRequest,
    Caller,
    StatelessAction,
    StatelessService,
)


class AuthenticatedService(StatelessService):
    """An example service: every action but /health needs an AMPLIfy Auth token."""

    name = "authenticated-service"
    version = "1.0.0"

    def actions(self) -> list[StatelessAction]:
        return [
            StatelessAction(name="health", path="/health", method="GET", handler=self.health),
            StatelessAction(name="echo", path="/echo", handler=self.echo, required_scopes=["read"]),
            StatelessAction(
                name="process",
                path="/process",
                handler=self.process,
                required_scopes=["read", "write"],
            ),
        ]

    def health(self, request: ActionRequest) -> dict[str, str]:
        """Liveness: answers without a token, and without asking the auth service."""
        return {"status": "healthy"}

    async def echo(self, request: ActionRequest, caller: Caller) -> dict[str, Any]:
        """The JSON body received, and the name of the token that sent it."""
        return {"echo": request.json(), "token_name": caller.name}

    def process(self, request: ActionRequest, caller: Caller) -> dict[str, Any]:
        """Upper-case ``{"text": ...}``. A plain function: it runs in a worker thread."""
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise ActionError(
                'send a JSON object with a string "text"', status_code=422, code="invalid_body"
            )
        text: str = body["text"]
        return {"result": text.upper(), "length": len(text), "processed_by": caller.name}


#: For ``uvicorn app:app`` and for tests; the auth client is made when it starts.
app = AuthenticatedService().create_app()

if __name__ == "__main__":
    AuthenticatedService().run()
