"""What the server's logs may hold: never a token.

The server itself never logs one. But uvicorn's access log (``ACCESS_LOG``)
writes each request's path and query as received, and a client may put a
token in either (``/auth/tokens/amp_live_...`` pasted where an id belongs;
a query holding one is refused with 400, yet still logged). So every record
of uvicorn's loggers goes through :class:`RedactTokens` first.
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import unquote

from amplify_auth_client.contract import TOKEN_LIKE

#: The loggers whose records carry what clients sent.
LOGGERS: Final = ("uvicorn.access", "uvicorn.error")
REDACTED: Final = "[redacted]"


def redact(text: str) -> str:
    """``text`` with every token-shaped run, plain or percent-encoded, replaced."""
    if "%" in text:
        decoded = unquote(text)
        if TOKEN_LIKE.search(decoded):
            text = decoded
    return TOKEN_LIKE.sub(REDACTED, text)


class RedactTokens(logging.Filter):
    """Rewrite a record's message and arguments without any token in them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install() -> None:
    """Put :class:`RedactTokens` on uvicorn's loggers, once per process."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
