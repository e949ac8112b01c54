"""The clients' configuration, checked once: where ``base_url`` and ``admin_token`` come
from, and what every option may be. The options and their defaults are in
:mod:`amplify_auth_client._options`."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from amplify_auth_client._exceptions import AuthConfigError
from amplify_auth_client._options import DEFAULTS, ClientOptions, seconds

ENV_BASE_URL: Final = "AUTH_SERVICE_URL"
ENV_ADMIN_TOKEN: Final = "AUTH_ADMIN_TOKEN"

# What an HTTP header value may hold: h11 refuses anything else, with the whole
# value (our secret) in its message.
_HEADER_SAFE: Final = re.compile(r"[!-~]+")


def _from_env(name: str) -> str | None:
    # An exported-but-empty variable means "not set", as shells usually intend.
    value = os.environ.get(name, "").strip()
    return value or None


def _timeout(value: float | httpx.Timeout) -> httpx.Timeout:
    if not isinstance(value, httpx.Timeout):
        return httpx.Timeout(seconds("timeout", value, allow_zero=False))
    # None is httpx's "no limit" for a phase, and allowed.
    for phase, limit in value.as_dict().items():
        if limit is not None:
            seconds(f"timeout ({phase})", limit, allow_zero=False)
    return value


def _admin_token(value: str | None) -> str | None:
    if value is None or (isinstance(value, str) and _HEADER_SAFE.fullmatch(value)):
        return value
    # The value is a secret: never echoed, not even in part.
    raise AuthConfigError(
        "admin_token must be printable ASCII without spaces, tabs or line breaks "
        "(a token read from a file often ends with a newline: strip it); the value "
        "given is not shown here"
    )


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AuthConfigError(f"{name} must be a whole number, zero or more, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Every option of a client, checked once when the client is built."""

    base_url: str
    admin_token: str | None = field(repr=False)
    timeout: httpx.Timeout
    cache_size: int
    cache_ttl: float
    negative_cache_ttl: float
    max_retries: int
    retry_deadline: float
    stale_if_error: float | None

    #: Whether to keep the revocation subscription; None: the default (see BaseAuthClient).
    subscribe_revocations: bool | None = None
    #: Whether to report cache hits to the server, and how often (see ``_usage``).
    report_usage: bool = True
    usage_report_interval: float = DEFAULTS["usage_report_interval"]

    @classmethod
    def resolve(cls, base_url: str | None, options: ClientOptions) -> ClientConfig:
        """Fill ``options`` from :data:`DEFAULTS` and ``base_url`` and ``admin_token`` from
        the environment, then check everything.

        Raises :class:`TypeError` for an option that does not exist (as a
        signature would) and :class:`AuthConfigError` with what to change.
        """
        unknown = sorted(set(options) - DEFAULTS.keys())
        if unknown:
            raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
        given: dict[str, Any] = {**DEFAULTS, **options}
        url = base_url or _from_env(ENV_BASE_URL)
        if url is None:
            raise AuthConfigError(
                "no auth service URL: pass base_url= (e.g. AuthClient('http://auth:8000')) "
                f"or set the {ENV_BASE_URL} environment variable"
            )
        if not url.startswith(("http://", "https://")):
            # Not echoed whole: a misplaced secret is a classic thing to find here.
            raise AuthConfigError(
                "base_url must start with http:// or https:// "
                f"(got a value starting with {url[:8]!r}); e.g. 'http://auth:8000'"
            )
        stale_if_error = given["stale_if_error"]
        subscribe = given["subscribe_revocations"]
        if subscribe is not None and not isinstance(subscribe, bool):
            raise AuthConfigError(
                f"subscribe_revocations must be True, False or None, got {type(subscribe).__name__}"
            )
        report_usage = given["report_usage"]
        if not isinstance(report_usage, bool):
            raise AuthConfigError(
                f"report_usage must be True or False, got {type(report_usage).__name__}"
            )
        return cls(
            base_url=url,
            admin_token=_admin_token(given["admin_token"] or _from_env(ENV_ADMIN_TOKEN)),
            timeout=_timeout(given["timeout"]),
            cache_size=_count("cache_size", given["cache_size"]),
            cache_ttl=seconds("cache_ttl", given["cache_ttl"]),
            negative_cache_ttl=seconds("negative_cache_ttl", given["negative_cache_ttl"]),
            max_retries=_count("max_retries", given["max_retries"]),
            retry_deadline=seconds("retry_deadline", given["retry_deadline"], allow_zero=False),
            stale_if_error=(
                None if stale_if_error is None else seconds("stale_if_error", stale_if_error)
            ),
            subscribe_revocations=subscribe,
            report_usage=report_usage,
            usage_report_interval=seconds(
                "usage_report_interval", given["usage_report_interval"], allow_zero=False
            ),
        )
