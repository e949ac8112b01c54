"""Server settings, read from the environment and `.env`.

Every setting has a safe default so that ``amplify-auth-server`` with no
configuration serves the embedded default: a SQLite file in the working
directory and an in-process cache. Settings that would make the server
unsafe are refused at start-up with a message that says what to change.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Final, Literal

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
#: Seconds over which failed admin authentications are aggregated into one audit row.
DEFAULT_AUDIT_FAILURE_WINDOW: Final = 60.0
#: Seconds between two writes of a process's usage counts (amplify_auth_server.usage).
DEFAULT_USAGE_FLUSH_SECONDS: Final = 5.0

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

    @field_validator(
        "throttle_validation_failures", "throttle_malformed_validations", "throttle_admin_failures"
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
        "database_url", "redis_url", "auth_admin_token", "trusted_proxies", mode="before"
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
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use redis://host:6379/0 (or rediss:// for TLS)")
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
        return self

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
