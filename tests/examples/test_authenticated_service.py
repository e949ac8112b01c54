"""examples/authenticated_service, run as its image runs it, against a real auth server process."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from amplify_auth_client import AuthClient, CreatedToken, generate_token
from tests.support.containers import EXAMPLE_COMMAND, EXAMPLE_DIRECTORY, native
from tests.support.readiness import wait_until_serving
from tests.support.server import Backend, ServerProcess, clean_environment, running_server
from tests.support.services import free_port
from tests.support.waiting import wait_for


@dataclass
class Example:
    """The example service's process, and where it logs."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)


@contextmanager
def running_example(auth_url: str, directory: Path, **env: str) -> Iterator[Example]:
    """``python app.py`` in the example's directory, as its image's CMD, until SIGTERM."""
    port = free_port()
    environment = clean_environment(
        {"AUTH_SERVICE_URL": auth_url, "HOST": "127.0.0.1", "PORT": str(port), **env}
    )
    if "AUTH_CACHE_TTL" not in env:  # a developer's own setting must not leak in
        environment.pop("AUTH_CACHE_TTL", None)
    log_path = directory / f"example-{port}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            native(EXAMPLE_COMMAND),
            cwd=EXAMPLE_DIRECTORY,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    example = Example(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until_serving(process, example.url, log_path)
        yield example
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.wait(timeout=20) in (0, -signal.SIGTERM), example.log()
        assert "Application shutdown complete" in example.log()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(Backend("embedded", tmp_path_factory.mktemp("auth"))) as server:
        yield server


@pytest.fixture(scope="module")
def admin(auth: ServerProcess) -> Iterator[AuthClient]:
    with AuthClient(auth.base_url, admin_token=auth.admin_token) as client:
        yield client


@pytest.fixture(scope="module")
def example(auth: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    # As deployed: the SDK's default cache (30 s) and its revocation subscription.
    with running_example(auth.base_url, tmp_path_factory.mktemp("example")) as ex:
        yield ex


@pytest.fixture(scope="module")
def reader(admin: AuthClient) -> CreatedToken:
    return admin.create_token("example-reader", ["read"])


@pytest.fixture(scope="module")
def writer(admin: AuthClient) -> CreatedToken:
    return admin.create_token("example-writer", ["read", "write"])


def test_health_needs_no_token(example: Example) -> None:
    response = httpx.get(example.url + "/health")
    assert (response.status_code, response.json()) == (200, {"status": "healthy"})


def test_no_token_is_challenged(example: Example) -> None:
    with example.http() as http:
        response = http.post("/echo", json={"hello": "world"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="authenticated-service"'
    assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    ("token", "description"),
    [
        (generate_token(), "the bearer token is not known to the auth service"),
        ("amp_live_not-a-token", "the bearer token is malformed"),
    ],
    ids=["unknown", "malformed"],
)
def test_a_wrong_token_is_refused(example: Example, token: str, description: str) -> None:
    with example.http(token) as http:
        response = http.post("/echo", json={"hello": "world"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer realm="authenticated-service", error="invalid_token", '
        f'error_description="{description}"'
    )
    assert response.json() == {"error": "invalid_token", "detail": description}
    assert token not in response.text


def test_echo_returns_the_body_and_the_token_name(example: Example, reader: CreatedToken) -> None:
    body = {"message": "hello", "items": [1, 2.5, None, True], "nested": {"k": "v"}}
    with example.http(reader.token) as http:
        response = http.post("/echo", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"echo": body, "token_name": "example-reader"}


def test_a_read_only_token_cannot_process(example: Example, reader: CreatedToken) -> None:
    with example.http(reader.token) as http:
        response = http.post("/process", json={"text": "hello"})
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer realm="authenticated-service", error="insufficient_scope", scope="read write"'
    )
    assert response.json()["missing_scopes"] == ["write"]
    assert reader.token not in response.text


def test_a_read_write_token_processes(example: Example, writer: CreatedToken) -> None:
    with example.http(writer.token) as http:
        response = http.post("/process", json={"text": "hello"})
        refused = http.post("/process", json={"txt": "hello"})
    assert response.status_code == 200, response.text
    assert response.json() == {"result": "HELLO", "length": 5, "processed_by": "example-writer"}
    assert (refused.status_code, refused.json()["error"]) == (422, "invalid_body")


#: How long a revocation may take to reach the example through the event stream: far
#: under the 30 s cache, so a pass cannot be the cache expiring.
REVOCATION_BOUND = 5.0


def test_a_revoked_token_is_refused_within_moments_despite_the_cache(
    example: Example, admin: AuthClient
) -> None:
    created = admin.create_token("soon-revoked", ["read"])
    with example.http(created.token) as http:
        assert http.post("/echo", json={}).status_code == 200  # now in the example's cache
        admin.revoke_token(created.token_id)
        # The event travels auth server -> SSE -> the example's SDK on its own
        # schedule: poll for its effect, bounded.
        wait_for(lambda: http.post("/echo", json={}).status_code != 200, REVOCATION_BOUND)
        response = http.post("/echo", json={})
    assert response.status_code == 401, response.text
    assert response.json()["detail"] == "the bearer token has been revoked"


def test_without_the_event_stream_a_revoked_token_lasts_until_the_cache_ttl(
    tmp_path: Path,
) -> None:
    # The fallback docs/service.md states: when the revocation stream is down
    # (here the auth server serves none), AUTH_CACHE_TTL alone bounds how long
    # a token validated just before its revocation is still accepted.
    no_stream = {"EVENTS_MAX_SUBSCRIBERS": "0"}
    with (
        running_server(Backend("embedded", tmp_path), env=no_stream) as own,
        AuthClient(own.base_url, admin_token=own.admin_token) as own_admin,
        running_example(own.base_url, tmp_path) as example,
    ):
        created = own_admin.create_token("cached-then-revoked", ["read"])
        with example.http(created.token) as http:
            assert http.post("/echo", json={}).status_code == 200
            own_admin.revoke_token(created.token_id)
            assert http.post("/echo", json={}).status_code == 200


def test_auth_server_stopped_means_503_then_recovery(tmp_path: Path, admin: AuthClient) -> None:
    with running_server(Backend("embedded", tmp_path)) as own:
        with AuthClient(own.base_url, admin_token=own.admin_token) as own_admin:
            token = own_admin.create_token("outage", ["read"]).token
        # AUTH_CACHE_TTL=0: the request after the stop asks the auth server
        # rather than being answered from the cache.
        with running_example(own.base_url, tmp_path, AUTH_CACHE_TTL="0") as example:
            with example.http(token) as http:
                assert http.post("/echo", json={}).status_code == 200
                own.stop()
                down = http.post("/echo", json={})
                health = http.get("/health")
                own.start()
                back = http.post("/echo", json={})
            log = example.log()
    assert down.status_code == 503, down.text
    assert down.headers["retry-after"] == "5"
    assert "www-authenticate" not in down.headers  # the token may be fine: retry, not re-login
    assert down.json()["error"] == "auth_unavailable"
    assert health.status_code == 200  # public actions never ask the auth server
    assert back.status_code == 200
    assert token not in log


def test_the_example_refuses_to_start_without_an_auth_url(tmp_path: Path) -> None:
    env = clean_environment({"PORT": str(free_port())})
    env.pop("AUTH_SERVICE_URL", None)
    result = subprocess.run(
        native(EXAMPLE_COMMAND),
        cwd=EXAMPLE_DIRECTORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "authenticated-service: AUTH_SERVICE_URL is not set: point it at the auth service, "
        "e.g. http://127.0.0.1:8000"
    )


def test_the_example_logs_no_token(example: Example, reader: CreatedToken) -> None:
    assert reader.token not in example.log()
