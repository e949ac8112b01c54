"""One error type for every refusal a service sends.

::

    ActionError                    an answer that is an error: status, code, detail, as JSON
    ├── raised by handlers         their own refusals (400, 404, 409, 422, ...)
    └── raised by the service      before a handler runs:
        400/401/403/503            the authentication core's refusals
                                   (:class:`~amplify_auth_client.Refusal`, RFC 6750),
                                   the same as every integration sends
        413 payload_too_large      a body over the service's max_body_bytes

Every body is ``{"error": code, "detail": text, ...}``. None is ever built from
the caller's token: the details name the token's *state* (revoked, expired),
never its value, so a response or a log of responses cannot leak it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from amplify_auth_client import Refusal


class ActionError(Exception):
    """Answer the request with an error: ``status_code``, and a JSON body ``{"error", "detail"}``.

    Raise it from a handler to refuse a request; the service turns it into
    the response, so handlers never build error responses themselves::

        if "text" not in body:
            raise ActionError("send {'text': ...}", status_code=422, code="invalid_body")

    ``extra`` adds fields to the body; ``headers`` are sent with it. Never put
    a secret in ``detail``: it is sent to the client as written.
    """

    def __init__(
        self,
        detail: str,
        *,
        status_code: int = 400,
        code: str = "bad_request",
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if not 400 <= status_code <= 599:
            raise ValueError(
                f"an ActionError answers an error: status_code {status_code} is not 4xx or 5xx"
            )
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code
        self.code = code
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, Any] = dict(extra or {})

    def body(self) -> dict[str, Any]:
        """The JSON body this error is answered with."""
        return {"error": self.code, "detail": self.detail, **self.extra}


def refused(refusal: Refusal) -> ActionError:
    """The core's refusal, as the error this service answers with."""
    return ActionError(
        refusal.detail,
        status_code=refusal.status,
        code=refusal.code,
        headers=refusal.headers,
        extra=refusal.extra,
    )


def payload_too_large(limit: int) -> ActionError:
    return ActionError(
        f"the request body is over {limit} bytes",
        status_code=413,
        code="payload_too_large",
    )
