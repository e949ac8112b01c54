"""What a handler is given: the caller's identity and the request's data, as typed values.

:class:`~amplify_auth_client.Caller` is the SDK's, the one every integration
hands over, so that code written for a service moves between frameworks.

Both are frozen so a handler cannot change what another part of the request
(a second handler call, a log line written after it) sees; neither ever holds
the caller's raw token. The ``Authorization`` header is withheld from
:attr:`ActionRequest.headers` on purpose: a handler that logs its request, or
echoes its headers, must not be able to leak the bearer token. A service that
calls another service authenticates with a token of its own, not the caller's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from amplify_auth_client import Caller
from stateless_microservice._errors import ActionError

__all__ = ["ActionRequest", "Caller"]


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """The request an action answers: method, path, parameters, headers and body.

    ``headers`` have lower-case names and never include ``authorization``
    (see the module's docstring). ``query`` keeps the last value of a
    repeated parameter. The body is read only after the caller was
    authenticated, and only up to the service's ``max_body_bytes``.

    >>> request = ActionRequest(method="POST", path="/echo", body=b'{"n": 1}')
    >>> request.json()
    {'n': 1}
    """

    method: str
    path: str
    path_params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body parsed as JSON; None for an empty body.

        A body that is not JSON raises :class:`ActionError` (400), which the
        service answers as such: a handler need not catch it.
        """
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise ActionError(
                "the request body is not valid JSON", status_code=400, code="invalid_json"
            ) from None
