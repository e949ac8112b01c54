"""Declare service endpoints as actions; authentication and scopes come for free.

>>> from stateless_microservice import StatelessAction, StatelessService
>>> class Hello(StatelessService):
...     def actions(self):
...         return [StatelessAction(name="hello", path="/hello", handler=self.hello,
...                                 required_scopes=["read"])]
...     def hello(self, request, caller):
...         return {"hello": caller.name}
>>> app = Hello().create_app()  # a FastAPI app: serve it with uvicorn, or Hello().run()

Everything public is imported from here; the modules behind it are private.
:mod:`stateless_microservice.testing` tests a service against an in-memory
auth server. The SDK's clients are re-exported, as the seed imports them.
"""

try:
    import fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by tests/microservice/test_exports.py
    raise ImportError(
        "stateless_microservice needs the service extra: pip install 'amplify-auth[service]'"
    ) from exc

from amplify_auth_client import AsyncAuthClient, AuthClient
from stateless_microservice._action import HttpMethod, StatelessAction
from stateless_microservice._errors import ActionError
from stateless_microservice._identity import ActionRequest, Caller
from stateless_microservice._service import (
    DEFAULT_MAX_BODY_BYTES,
    ENV_CACHE_TTL,
    StatelessService,
    auth_client_from_environment,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ENV_CACHE_TTL",
    "ActionError",
    "ActionRequest",
    "AsyncAuthClient",
    "AuthClient",
    "Caller",
    "HttpMethod",
    "StatelessAction",
    "StatelessService",
    "auth_client_from_environment",
]

# As amplify_auth_client does: reprs and tracebacks name the public path.
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type) and _value.__module__.startswith("stateless_microservice."):
        _value.__module__ = "stateless_microservice"
del _name, _value
