"""Real server processes over real sockets, for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from amplify_auth_client import generate_token
from tests.support.readiness import wait_until_serving
from tests.support.services import RedisNamespace, free_port

# Settings a developer may have exported; a test server must not inherit them.
_SERVER_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "AUTH_ADMIN_TOKEN",
    "ADMIN_TOKEN_FILE",
    "TOKEN_CACHE_TTL",
    "NEGATIVE_CACHE_TTL",
    "LOCAL_CACHE_TTL",
    "REDIS_KEY_PREFIX",
    "HOST",
    "PORT",
    "LOG_LEVEL",
    "ACCESS_LOG",
    "THROTTLE_VALIDATION_FAILURES",
    "THROTTLE_MALFORMED_VALIDATIONS",
    "THROTTLE_ADMIN_FAILURES",
    "TRUSTED_PROXIES",
    "AUDIT_FAILURE_WINDOW",
    "WEBHOOK_URLS",
    "WEBHOOK_SECRET",
    "WEBHOOK_EXPIRING_DAYS",
    "WEBHOOK_RETRY_HOURS",
    "WEBHOOK_RETRY_INITIAL",
    "WEBHOOK_TIMEOUT",
    "WEBHOOK_POLL_INTERVAL",
    "WEBHOOK_SCAN_INTERVAL",
    "USAGE_COUNTING",
    "USAGE_FLUSH_SECONDS",
    "ROTATION_IDLE_SCAN_SECONDS",
    # Terminal size: pytest-xdist's workers set them, and rich would obey.
    "COLUMNS",
    "LINES",
)


#: Every test client comes from 127.0.0.1, and a module's tests share one
#: server: budgets no test reaches unless it means to (tests/server/test_throttle.py
#: sets its own).
UNTHROTTLED: dict[str, str] = {
    "THROTTLE_VALIDATION_FAILURES": "1000000/minute",
    "THROTTLE_MALFORMED_VALIDATIONS": "1000000/minute",
    "THROTTLE_ADMIN_FAILURES": "1000000/minute",
}


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in _SERVER_VARIABLES}
    env.update(extra or {})
    return env


@dataclass
class Backend:
    """Where a server keeps its tokens: the embedded default, or PostgreSQL + Redis."""

    name: str
    directory: Path
    database_url: str | None = None
    redis: RedisNamespace | None = None

    @property
    def sqlite_url(self) -> str:
        return f"sqlite:///{self.directory / 'amplify_auth.db'}"

    @property
    def store_url(self) -> str:
        """The URL a test uses to reach the same database directly."""
        return self.database_url or self.sqlite_url

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.database_url is not None:
            env["DATABASE_URL"] = self.database_url
        if self.redis is not None:
            env["REDIS_URL"] = self.redis.url
            env["REDIS_KEY_PREFIX"] = self.redis.prefix
        return env


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``amplify-auth-server ARGS`` run to its end in ``cwd``, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "amplify_auth_server", *args],
        cwd=cwd,
        env=clean_environment(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@dataclass
class ServerProcess:
    """``python -m amplify_auth_server`` on a free port, logging to a file."""

    cwd: Path
    env: dict[str, str]
    admin_token: str | None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    #: The process's open-file limit (soft and hard), as a tight ``ulimit -n`` sets it.
    open_files: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.cwd / f"server-{self.port}.log"

    def start(self, *, wait: bool = True) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        limit = [] if self.open_files is None else ["prlimit", f"--nofile={self.open_files}"]
        self.process = subprocess.Popen(
            [
                *limit,
                sys.executable,
                "-m",
                "amplify_auth_server",
                "serve",
                "--port",
                str(self.port),
            ],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.process is not None
        wait_until_serving(self.process, self.base_url, self.log_path, timeout=timeout)

    def stop(self) -> int:
        """SIGTERM, as an orchestrator would; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, token: str | None = "admin", **kwargs: object) -> httpx.Client:
        """An HTTP client; ``token="admin"`` sends this server's admin token."""
        if token == "admin":
            token = self.admin_token
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30.0, **kwargs)  # type: ignore[arg-type]


@contextmanager
def running_server(
    backend: Backend,
    *,
    env: Mapping[str, str] | None = None,
    admin_token: str | None = None,
    open_files: int | None = None,
) -> Iterator[ServerProcess]:
    """A started server on ``backend``; stopped (SIGTERM) on exit."""
    admin_token = admin_token or generate_token()
    server = ServerProcess(
        cwd=backend.directory,
        env=clean_environment(
            {**UNTHROTTLED, **backend.env(), "AUTH_ADMIN_TOKEN": admin_token, **(env or {})}
        ),
        admin_token=admin_token,
        open_files=open_files,
    )
    try:
        server.start()
        yield server
    finally:
        # Also when it never became ready: no process outlives its test.
        if server.process is not None:
            server.stop()


@dataclass(frozen=True)
class QuickStartServer:
    """The embedded server started as the quick start starts it: with no
    ``AUTH_ADMIN_TOKEN``, so it minted ``amplify_auth.admin-token`` in ``directory``."""

    process: ServerProcess
    directory: Path
    admin_token: str

    @property
    def url(self) -> str:
        return self.process.base_url


@contextmanager
def quick_start_server(directory: Path) -> Iterator[QuickStartServer]:
    """A :class:`QuickStartServer` working in ``directory``; stopped on exit."""
    # An empty AUTH_ADMIN_TOKEN is unset: the server mints its token file.
    with running_server(Backend("embedded", directory), env={"AUTH_ADMIN_TOKEN": ""}) as process:
        token = (directory / "amplify_auth.admin-token").read_text(encoding="ascii").strip()
        yield QuickStartServer(process, directory, token)
