"""Request bodies, strictly: JSON labelled as JSON, in UTF-8, with every key once.

* ``Content-Type: application/json`` (parameters such as ``charset`` allowed),
  or 415. A body labelled ``text/plain`` is one that any web page may send
  cross-origin without a CORS preflight; requiring JSON's type closes that.
* UTF-8 that parses, or 422 ``json_invalid``, on every route alike (FastAPI
  answered management routes a 400 of its own for bytes that are not UTF-8).
* No duplicate key, at any depth, or 422: parsers disagree on which of two
  keys wins, and a proxy that checked the first must not be fooled by the
  second.

:class:`JsonBodies` applies this to every route under ``/auth/`` before
FastAPI parses anything; the validation fast path, which answers before it,
calls :func:`check` itself, with a shortcut that keeps the hot path free of
a second parse (see :func:`check`).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amplify_auth_server.errors import InvalidInput, UnsupportedMediaType, render

_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
#: Where :class:`JsonBodies` leaves the body it parsed, for the create fast path
#: (:class:`~amplify_auth_server.middleware.CreateFastPath`) not to parse it again.
PARSED: Final = "amplify_auth.parsed_body"
#: The closing quote of a key and its colon: every key has one, so their count
#: bounds the number of keys from above (a string value can hold ``\":``).
_KEY_END: Final = re.compile(rb'"\s*:')


def require_json(content_type: bytes | None) -> None:
    """415 unless ``content_type`` is ``application/json`` (with any parameters)."""
    media = (content_type or b"").partition(b";")[0].strip().lower()
    if media != b"application/json":
        raise UnsupportedMediaType()


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        # The key is not named: it may be a pasted secret.
        raise InvalidInput(
            "the JSON body has a key twice; send each key once",
            errors=[{"loc": ["body"], "msg": "duplicate key", "type": "json_invalid"}],
        )
    return result


#: Built once: ``json.loads`` with a hook builds a decoder per call, half of a
#: small body's parse.
_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_keys)


def parse(body: bytes) -> Any:
    """``body`` as JSON: UTF-8, and every key once; else :class:`InvalidInput`."""
    try:
        return _DECODER.decode(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput(
            "the body is not valid JSON in UTF-8",
            errors=[{"loc": ["body"], "msg": "Invalid JSON", "type": "json_invalid"}],
        ) from None


def check(body: bytes, distinct_keys: int) -> None:
    """Refuse duplicate keys in a body the model already parsed, whose ``distinct_keys``
    known fields it found.

    The hot path's shortcut: when the body has no more key-ends than the
    distinct fields the model took from it, it has no other key, so none
    twice, and it is not parsed again. Otherwise (an unknown field, a
    duplicate, a value that holds ``":``), it is.
    """
    if len(_KEY_END.findall(body)) > distinct_keys:
        parse(body)


class JsonBodies:
    """Hold every body sent to ``/auth/`` to :mod:`bodies`'s rules before the app parses it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _BODY_METHODS
            or not scope["path"].startswith("/auth/")
        ):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        try:
            while True:
                # The body limit's receive, outside this one, raises 413 at
                # the first byte too many.
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break  # the client went away: let the app find out as usual
                body += message.get("body", b"")
                if not message.get("more_body", False):
                    break
            if body:
                require_json(dict(scope["headers"]).get(b"content-type"))
                scope[PARSED] = parse(body)
        except (InvalidInput, UnsupportedMediaType, HTTPException) as exc:
            await _refuse(send, exc)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Send, exc: InvalidInput | UnsupportedMediaType | HTTPException) -> None:
    status, body, _ = render(exc)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
