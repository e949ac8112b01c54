"""The clients' keyword options and their defaults, written once.

=====================  ==============================  ===========================================
argument               default                         meaning
=====================  ==============================  ===========================================
``base_url``           env ``AUTH_SERVICE_URL``        the auth server, e.g. ``http://auth:8000``
``admin_token``        env ``AUTH_ADMIN_TOKEN``        only management calls need it
``timeout``            ``DEFAULT_TIMEOUT`` = 5 s       per HTTP attempt (connect, read, write, pool)
``cache_size``         ``DEFAULT_CACHE_SIZE`` = 10000  least recently used out first; 0 = none
``cache_ttl``          ``DEFAULT_CACHE_TTL`` = 30 s    how long a positive answer is reused
``negative_cache_ttl`` ``DEFAULT_NEGATIVE_..`` = 5 s   same for unknown, revoked, expired tokens
``max_retries``        ``DEFAULT_MAX_RETRIES`` = 3     retries after the first attempt (4 in all)
``retry_deadline``     ``DEFAULT_RETRY_DEADLINE``=10s  a call's total time: no retry starts after
                                                       it, each attempt's timeouts are cut to it
``stale_if_error``     None (off)                      seconds a positive answer may outlive
                                                       ``cache_ttl`` while the server is down
``subscribe_...``      None (on, but off with a        evict entries as the server announces
                       transport or set_testing)       changes (see ``_subscription``)
``report_usage``       True                            report cache hits, so that the server's
                                                       ``last_used_at`` counts them (``_usage``)
``usage_report_...``   ``DEFAULT_USAGE_REPORT_..``     seconds between two reports
                       = 60 s
=====================  ==============================  ===========================================

``cache_ttl`` is also the longest a revoked token can still be accepted by a
client that cached it just before the revocation, while its revocation
subscription is down (or off); ``stale_if_error`` adds to that, but only
while the server cannot be reached. No entry is ever served past the
token's own ``expires_at``.

Both clients take these as ``**options: Unpack[ClientOptions]``: type
checkers and editors see every keyword with its type, and the defaults live
in :data:`DEFAULTS` alone (:class:`~amplify_auth_client._config.ClientConfig`
applies them), not in two signatures and a base class. No httpx here at run
time: the package's ``__init__`` imports this module, and the server imports
the package (for its contract) without the SDK's HTTP stack.
"""

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any, Final, TypedDict

from amplify_auth_client._exceptions import AuthConfigError
from amplify_auth_client.contract import USAGE_REPORT_INTERVAL

if TYPE_CHECKING:
    import httpx

DEFAULT_TIMEOUT: Final = 5.0
DEFAULT_CACHE_SIZE: Final = 10_000
DEFAULT_CACHE_TTL: Final = 30.0
DEFAULT_NEGATIVE_CACHE_TTL: Final = 5.0
DEFAULT_MAX_RETRIES: Final = 3
DEFAULT_RETRY_DEADLINE: Final = 10.0
#: The first backoff cap; each retry doubles it, up to DEFAULT_RETRY_MAX_WAIT.
DEFAULT_RETRY_INITIAL_WAIT: Final = 0.1
DEFAULT_RETRY_MAX_WAIT: Final = 2.0
#: Whether clients report their cache hits (``report_usage``), and how often.
DEFAULT_REPORT_USAGE: Final = True
DEFAULT_USAGE_REPORT_INTERVAL: Final = USAGE_REPORT_INTERVAL


class ClientOptions(TypedDict, total=False):
    """Every keyword option of :class:`~amplify_auth_client.AuthClient` and
    :class:`~amplify_auth_client.AsyncAuthClient` (see the module's table)."""

    admin_token: str | None
    timeout: float | httpx.Timeout
    cache_size: int
    cache_ttl: float
    negative_cache_ttl: float
    max_retries: int
    retry_deadline: float
    stale_if_error: float | None
    subscribe_revocations: bool | None
    report_usage: bool
    usage_report_interval: float


#: What an option left out means.
DEFAULTS: Final[dict[str, Any]] = {
    "admin_token": None,
    "timeout": DEFAULT_TIMEOUT,
    "cache_size": DEFAULT_CACHE_SIZE,
    "cache_ttl": DEFAULT_CACHE_TTL,
    "negative_cache_ttl": DEFAULT_NEGATIVE_CACHE_TTL,
    "max_retries": DEFAULT_MAX_RETRIES,
    "retry_deadline": DEFAULT_RETRY_DEADLINE,
    "stale_if_error": None,
    "subscribe_revocations": None,
    "report_usage": DEFAULT_REPORT_USAGE,
    "usage_report_interval": DEFAULT_USAGE_REPORT_INTERVAL,
}


def seconds(name: str, value: float, *, allow_zero: bool = True) -> float:
    """``value`` as finite seconds, or :class:`AuthConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise AuthConfigError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if math.isinf(value):
        # An infinite TTL would serve a revoked token forever; an infinite
        # timeout or deadline would hang a request behind a dead server.
        raise AuthConfigError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise AuthConfigError(f"{name} must be {bound} seconds, got {value!r}")
    return float(value)


def signature(transport: str) -> inspect.Signature:
    """The signature of the shells' ``__init__``, for ``help()`` and :func:`inspect.signature`.

    ``**options`` alone would hide every keyword and its default at run
    time; this spells them out from :class:`ClientOptions` and
    :data:`DEFAULTS`, so that they are still written only once.
    """
    keyword = inspect.Parameter.KEYWORD_ONLY
    # Strings, as the module's ``from __future__ import annotations`` left them.
    annotations = {
        name: getattr(hint, "__forward_arg__", hint)
        for name, hint in ClientOptions.__annotations__.items()
    }
    return inspect.Signature(
        [
            inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY),
            inspect.Parameter(
                "base_url",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=None,
                annotation="str | None",
            ),
            *(
                inspect.Parameter(name, keyword, default=default, annotation=annotations[name])
                for name, default in DEFAULTS.items()
            ),
            inspect.Parameter("transport", keyword, default=None, annotation=f"{transport} | None"),
        ],
        return_annotation="None",
    )
