"""Server settings, read from the environment and `.env`.

Every setting has a safe default so that ``amplify-auth-server`` with no
configuration serves the embedded default: a SQLite file in the working
directory and an in-process cache. Settings that would make the server
unsafe are refused at start-up with a message that says what to change.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from limits import parse
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from amplify_auth_client import contract

#: Bytes a request's line and header may take (as nginx: 4 buffers of 8 KiB).
DEFAULT_MAX_HEADER_BYTES: Final = 32 * 1024
#: Seconds to send a whole header, then a whole body (at most MAX_BODY_BYTES).
DEFAULT_HEADER_TIMEOUT: Final = 10.0
DEFAULT_BODY_TIMEOUT: Final = 10.0
#: Client connections one server process holds at most (uvicorn's
#: ``limit_concurrency``): past it, a request is answered 503 at once.
DEFAULT_MAX_CONNECTIONS: Final = 2048
#: Seconds an idle keep-alive connection is kept (uvicorn's default).
DEFAULT_KEEP_ALIVE_TIMEOUT: Final = 5
#: Failure budgets per client (see amplify_auth_server.throttle), in `limits`'
#: notation. A service forwarding its callers' tokens fails on their behalf,
#: so the validation budgets are generous; an admin's credentials fail rarely.
DEFAULT_VALIDATION_FAILURES: Final = "300/minute"
DEFAULT_MALFORMED_VALIDATIONS: Final = "3000/minute"
DEFAULT_ADMIN_FAILURES: Final = "20/minute"
DEFAULT_SIGNIN_FAILURES: Final = "10/minute"
#: Seconds over which failed admin authentications are aggregated into one audit row.
DEFAULT_AUDIT_FAILURE_WINDOW: Final = 60.0
#: Webhooks (amplify_auth_server.webhooks): the warning before an expiry, how
#: long a delivery is retried, the first wait, and the deadline of one attempt.
DEFAULT_WEBHOOK_EXPIRING_DAYS: Final = 7
DEFAULT_WEBHOOK_RETRY_HOURS: Final = 24.0
DEFAULT_WEBHOOK_RETRY_INITIAL: Final = 5.0
DEFAULT_WEBHOOK_TIMEOUT: Final = 10.0
#: Standard Webhooks asks for a secret of 24 to 64 bytes.
WEBHOOK_SECRET_BYTES: Final = (24, 64)
#: Seconds between two writes of a process's usage counts (amplify_auth_server.usage).
DEFAULT_USAGE_FLUSH_SECONDS: Final = 5.0
#: Seconds between two scans for rotations whose old token went idle.
DEFAULT_ROTATION_IDLE_SCAN_SECONDS: Final = 30.0

# No token printed in our docs or the seed passes the checksum (a test of the
# docs checks it), so the check below also refuses every documented example.


class Settings(BaseSettings):
    """The server's configuration. Field names are the environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy or libpq-style URL; unset means a SQLite file in the working "
        "directory. `postgresql://user:pass@host:5432/db` is accepted as written.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Shared cache and cross-replica invalidation; unset means in-process only.",
    )
    token_cache_ttl: int = Field(
        default=1800, ge=1, description="Seconds a token's state may be served from the cache."
    )
    negative_cache_ttl: int = Field(
        default=30, ge=0, description="Seconds an unknown token's answer is cached."
    )
    local_cache_ttl: int = Field(
        default=5,
        ge=0,
        description="With Redis: seconds the in-process first-level cache holds an entry.",
    )
    local_cache_size: int = Field(default=100_000, ge=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    auth_admin_token: SecretStr | None = Field(
        default=None,
        description="Registered (hash only) as an admin token at start-up.",
    )
    admin_token_file: Path | None = Field(
        default=None,
        description="Where the embedded default keeps the admin token it mints; defaults "
        "to the SQLite file's name with `.admin-token`.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    access_log: bool = False
    migrate_on_start: bool = True
    redis_key_prefix: str = Field(default="amplify:auth", pattern=r"^[A-Za-z0-9:_.-]{1,64}$")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_header_bytes: int = Field(
        default=DEFAULT_MAX_HEADER_BYTES,
        ge=1024,
        le=1024 * 1024,
        description="Bytes a request's line and header may take; past it, 431 and the "
        "connection is closed.",
    )
    header_timeout: float = Field(
        default=DEFAULT_HEADER_TIMEOUT,
        gt=0,
        description="Seconds a client has to send a whole request header, from its first "
        "byte (or from connecting); past it, 408 and the connection is closed.",
    )
    body_timeout: float = Field(
        default=DEFAULT_BODY_TIMEOUT,
        gt=0,
        description="Seconds a client has to send a whole request body, from the header's "
        "end; past it, the connection is closed.",
    )
    keep_alive_timeout: int = Field(
        default=DEFAULT_KEEP_ALIVE_TIMEOUT,
        ge=1,
        description="Seconds an idle keep-alive connection is kept open.",
    )
    max_connections: int = Field(
        default=DEFAULT_MAX_CONNECTIONS,
        ge=2,
        description="Client connections (event stream subscribers included) one server "
        "process holds; past it, requests are answered 503. Lowered to what the "
        "open-file limit allows.",
    )
    events_max_subscribers: int = Field(
        default=1000,
        ge=0,
        description="Event stream subscribers one server process serves at most; 0 turns "
        "the stream off.",
    )
    events_keepalive: float = Field(
        default=15.0,
        gt=0,
        # The SDK takes a stream silent for 60 s for dead.
        le=30,
        description="Seconds of silence after which the event stream sends a keepalive comment.",
    )
    redis_read_budget: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="Seconds a validation waits for Redis before it asks the database instead; "
        "past it, validations leave Redis alone for a second.",
    )
    invalidation_ack_timeout: float = Field(
        default=1.0,
        gt=0,
        description="Seconds a revoke or extend waits for every replica to confirm it evicted.",
    )

    console_enabled: bool = Field(
        default=True, description="Serve the web console under `/console`."
    )
    console_secure_cookies: bool = Field(
        default=False,
        description="Mark the console's cookies `Secure` even over plain HTTP: for a server "
        "behind a proxy that terminates TLS (over HTTPS they always are).",
    )

    throttle_validation_failures: str = Field(
        default=DEFAULT_VALIDATION_FAILURES,
        description="Validations of unknown, revoked or expired tokens one client may fail "
        "before 429, such as `300/minute` or `50/10 seconds`.",
    )
    throttle_malformed_validations: str = Field(
        default=DEFAULT_MALFORMED_VALIDATIONS,
        description="Validations of malformed tokens one client may send before 429.",
    )
    throttle_admin_failures: str = Field(
        default=DEFAULT_ADMIN_FAILURES,
        description="Failed admin authentications (401, 403) one client may make before 429.",
    )
    throttle_console_signin_failures: str = Field(
        default=DEFAULT_SIGNIN_FAILURES,
        description="Refused console sign-ins one client may make before it has to wait "
        "for the window to end (429, even with the right token).",
    )
    trusted_proxies: str | None = Field(
        default=None,
        description="Comma-separated addresses or networks of the proxies whose "
        "X-Forwarded-For names the client; unset trusts none (the socket's peer is the "
        "client), `*` trusts every peer (only where nothing else can reach the server).",
    )
    usage_counting: bool = Field(
        default=True,
        description="Count each token's uses (valid validations, management calls, SDK "
        "reports) and write them down: `last_used_at` and the usage per day. Off: "
        "nothing is counted and SDK reports are accepted and ignored.",
    )
    rotation_idle_scan_seconds: float = Field(
        default=DEFAULT_ROTATION_IDLE_SCAN_SECONDS,
        gt=0,
        le=3600,
        description="Seconds between two scans for rotated tokens gone idle for their "
        "`finish_when_idle_seconds` (amplify_auth_server.rotations): how much later than "
        "that their grace may end.",
    )
    usage_flush_seconds: float = Field(
        default=DEFAULT_USAGE_FLUSH_SECONDS,
        gt=0,
        le=3600,
        description="Seconds between two writes of a process's usage counts: how long "
        "after a use `last_used_at` may still not show it (plus one writer round).",
    )
    audit_failure_window: float = Field(
        default=DEFAULT_AUDIT_FAILURE_WINDOW,
        ge=1,
        le=3600,
        description="Seconds over which failed admin authentications from one client on one "
        "route are counted into one audit row.",
    )

    webhook_urls: str | None = Field(
        default=None,
        description="Comma-separated http(s) URLs that receive token events, signed as "
        "Standard Webhooks; unset sends none (and writes no outbox rows).",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="The signing secret, `whsec_` and 24 to 64 random bytes in base64; "
        "required with WEBHOOK_URLS.",
    )
    webhook_expiring_days: int = Field(
        default=DEFAULT_WEBHOOK_EXPIRING_DAYS,
        ge=1,
        le=contract.MAX_TTL_DAYS,
        description="Days before a token's expiry that `token.expiring` is sent.",
    )
    webhook_retry_hours: float = Field(
        default=DEFAULT_WEBHOOK_RETRY_HOURS,
        gt=0,
        le=7 * 24,
        description="Hours a delivery is retried, from its event, before it is given up.",
    )
    webhook_retry_initial: float = Field(
        default=DEFAULT_WEBHOOK_RETRY_INITIAL,
        gt=0,
        le=3600,
        description="Seconds before the first retry; each next wait doubles (up to an hour), "
        "with jitter.",
    )
    webhook_timeout: float = Field(
        default=DEFAULT_WEBHOOK_TIMEOUT,
        gt=0,
        le=60,
        description="Seconds one delivery attempt may take before it counts as failed.",
    )
    webhook_poll_interval: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds between two looks for due deliveries (a replica's own changes "
        "are sent at once).",
    )
    webhook_scan_interval: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="Seconds between two scans for tokens entering WEBHOOK_EXPIRING_DAYS.",
    )

    @field_validator(
        "throttle_validation_failures",
        "throttle_malformed_validations",
        "throttle_admin_failures",
        "throttle_console_signin_failures",
    )
    @classmethod
    def _budget(cls, value: str) -> str:
        try:
            item = parse(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a budget; write it as `limits` does: 300/minute, "
                "50 per 10 seconds, 1000/hour"
            ) from None
        if item.amount < 1:
            raise ValueError("a budget of 0 would refuse every failure; allow at least 1")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str | None) -> str | None:
        for entry in _entries(value or ""):
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an address or a network; list the proxies as "
                    "10.0.0.5,10.1.0.0/16 (or `*` for every peer)"
                ) from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator(
        "database_url",
        "redis_url",
        "auth_admin_token",
        "trusted_proxies",
        "webhook_urls",
        "webhook_secret",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        if value is not None and ":memory:" in value:
            raise ValueError(
                "an in-memory SQLite database would lose every token at each restart; "
                "use a file (sqlite:///path/to/auth.db)"
            )
        if value is not None:
            scheme = value.partition(":")[0].partition("+")[0]
            if scheme not in ("postgresql", "postgres", "sqlite"):
                raise ValueError(
                    f"{scheme!r} is not supported; use postgresql://user:pass@host:5432/db "
                    "or sqlite:///path/to/file.db"
                )
            from sqlalchemy.exc import ArgumentError

            from amplify_auth_server.database import async_url

            try:
                async_url(value)  # what else it refuses (a connect_timeout that is no number)
            except ArgumentError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("webhook_urls")
    @classmethod
    def _webhook_urls(cls, value: str | None) -> str | None:
        for entry in _entries(value or ""):
            problem = _unsafe_webhook_url(entry)
            if problem is not None:
                raise ValueError(f"WEBHOOK_URLS: {entry!r} {problem}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "use redis://host:6379/0 (rediss:// for TLS, unix:///path/to/redis.sock "
                "for a socket)"
            )
        return value

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if self.events_max_subscribers >= self.max_connections:
            raise ValueError(
                f"EVENTS_MAX_SUBSCRIBERS ({self.events_max_subscribers}) would take every one "
                f"of MAX_CONNECTIONS ({self.max_connections}) and leave none for validations; "
                "lower it or raise MAX_CONNECTIONS"
            )
        if self.auth_admin_token is not None:
            raw = self.auth_admin_token.get_secret_value()
            if not contract.token_is_well_formed(raw):
                raise ValueError(
                    "AUTH_ADMIN_TOKEN is not a valid amp_live_ token (wrong shape or checksum). "
                    "Mint one with `amplify-auth-server create-admin-token`, or unset it."
                )
        if self.webhook_secret is not None:
            # Checked here, not in a field validator: pydantic's message for a
            # field repeats its input, and this one is a secret.
            problem = _bad_webhook_secret(self.webhook_secret.get_secret_value())
            if problem is not None:
                raise ValueError(
                    f"WEBHOOK_SECRET {problem}; make one with "
                    "python -c \"import base64, os; print('whsec_' + "
                    'base64.b64encode(os.urandom(32)).decode())"'
                )
        if self.webhook_url_list and self.webhook_secret is None:
            raise ValueError(
                "WEBHOOK_URLS is set without WEBHOOK_SECRET: receivers could not tell our "
                "events from forged ones; set WEBHOOK_SECRET (whsec_ and base64)"
            )
        return self

    @property
    def webhook_url_list(self) -> tuple[str, ...]:
        """``WEBHOOK_URLS`` as a tuple, each once, in order."""
        return tuple(dict.fromkeys(_entries(self.webhook_urls or "")))

    @property
    def proxy_hosts(self) -> list[str]:
        """``TRUSTED_PROXIES`` as a list, for uvicorn's ProxyHeadersMiddleware."""
        return _entries(self.trusted_proxies or "")

    @property
    def is_embedded(self) -> bool:
        """Whether the database is the SQLite default (or any SQLite file)."""
        return self.database_url is None or self.database_url.startswith("sqlite")

    @property
    def resolved_admin_token_file(self) -> Path | None:
        """The admin token file of the embedded default, or None outside it."""
        return contract.admin_token_file(self.database_url, self.admin_token_file)


def _entries(value: str) -> list[str]:
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def _unsafe_webhook_url(entry: str) -> str | None:
    """Why ``entry`` cannot receive webhooks, or None."""
    # The standard library's reading, not httpx's: the server loads no HTTP
    # client unless it has webhooks to send (tests/client/test_slim.py).
    try:
        url = urlsplit(entry)
        url.port  # noqa: B018 (a port that is no number raises here)
    except ValueError:
        return "is not a URL; write it as https://hooks.example.com/amplify"
    if url.scheme not in ("http", "https") or not url.hostname:
        return "is not an http(s) URL with a host; write it as https://hooks.example.com/amplify"
    if url.username is not None or url.password is not None:
        # Logged with every failed attempt: credentials have no place there.
        return (
            "carries credentials; drop them (the signature is what tells a receiver the "
            "event is ours)"
        )
    return None


def _bad_webhook_secret(secret: str) -> str | None:
    """What is wrong with ``secret`` as a Standard Webhooks secret, or None."""
    if not secret.startswith("whsec_"):
        return "must start with whsec_"
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        return "is not whsec_ followed by base64"
    low, high = WEBHOOK_SECRET_BYTES
    if not low <= len(key) <= high:
        return f"holds {len(key)} bytes; use {low} to {high} random bytes"
    return None
