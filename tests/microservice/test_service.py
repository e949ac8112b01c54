"""A service's app: RFC 6750 refusals, 503 when the auth service is down, typed handler inputs."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.responses import JSONResponse

from amplify_auth_client import AsyncAuthClient, AuthConfigError, CreatedToken
from amplify_auth_client.testing import FakeAuthServer
from stateless_microservice import (
    ActionError,
    ActionRequest,
    Caller,
    StatelessAction,
    StatelessService,
    auth_client_from_environment,
)
from stateless_microservice._service import cache_ttl_from_environment
from stateless_microservice.testing import service_client

REALM = 'Bearer realm="test-service"'


@dataclass
class Point:
    x: int
    y: int


class Probe(StatelessService):
    """A service that reports what its handlers were given."""

    name = "test-service"
    max_body_bytes = 64

    def __init__(self) -> None:
        self.seen: list[tuple[ActionRequest, Caller | None, int]] = []
        self.events: list[str] = []

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        self.events.append("start")
        yield
        self.events.append("stop")

    def actions(self) -> list[StatelessAction]:
        return [
            StatelessAction(name="health", path="/health", method="GET", handler=self.health),
            StatelessAction(name="read", path="/read", handler=self.sync, required_scopes=["read"]),
            StatelessAction(
                name="item",
                path="/items/{item_id}",
                method="PUT",
                handler=self.asynchronous,
                required_scopes=["read", "write"],
            ),
            StatelessAction(
                name="fails", path="/fails", handler=self.fails, required_scopes=["read"]
            ),
            StatelessAction(name="refuses", path="/refuses", handler=self.refuses),
            StatelessAction(name="created", path="/created", handler=self.created),
            StatelessAction(name="nothing", path="/nothing", method="DELETE", handler=self.nothing),
            StatelessAction(name="point", path="/point", method="GET", handler=self.point),
        ]

    def health(self, request: ActionRequest) -> dict[str, str]:
        return {"status": "healthy"}

    def sync(self, request: ActionRequest, caller: Caller) -> dict[str, Any]:
        self.seen.append((request, caller, threading.get_ident()))
        return {"json": request.json(), "caller": caller.name}

    async def asynchronous(self, request: ActionRequest, caller: Caller) -> dict[str, Any]:
        self.seen.append((request, caller, threading.get_ident()))
        return {"id": request.path_params["item_id"]}

    def fails(self, request: ActionRequest, caller: Caller) -> None:
        raise RuntimeError("internal secret detail")

    def refuses(self, request: ActionRequest) -> None:
        raise ActionError("no such order", status_code=404, code="not_found", extra={"id": 7})

    def created(self, request: ActionRequest) -> JSONResponse:
        return JSONResponse({"created": True}, status_code=201, headers={"Location": "/x/1"})

    def nothing(self, request: ActionRequest) -> None:
        return None

    def point(self, request: ActionRequest) -> Point:
        return Point(1, 2)


@dataclass
class World:
    auth: FakeAuthServer
    service: Probe
    client: httpx.Client
    reader: CreatedToken
    writer: CreatedToken

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def world() -> Iterator[World]:
    auth = FakeAuthServer()
    reader = auth.add_token("reader", ["read"])
    writer = auth.add_token("writer", ["read", "write", "extra"])
    service = Probe()
    with service_client(service, auth) as client:
        yield World(auth, service, client, reader, writer)


# -- authentication -------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Basic dTpw"}],
    ids=["none", "empty", "no-token", "basic"],
)
def test_no_bearer_token_gets_a_bare_challenge(world: World, headers: dict[str, str]) -> None:
    response = world.client.post("/read", json={}, headers=headers)
    assert response.status_code == 401
    # RFC 6750 section 3.1: no error code when no credentials came.
    assert response.headers["www-authenticate"] == REALM
    assert response.json() == {
        "error": "unauthorized",
        "detail": "this action needs a bearer token: send `Authorization: Bearer <token>`",
    }
    assert world.auth.validation_requests() == 0
    assert world.service.seen == []


def test_two_authorization_headers_are_a_bad_request(world: World) -> None:
    headers = [("Authorization", f"Bearer {world.reader.token}")] * 2
    response = world.client.post("/read", json={}, headers=headers)
    assert response.status_code == 400
    assert response.headers["www-authenticate"] == f'{REALM}, error="invalid_request"'
    assert world.service.seen == []


@pytest.mark.parametrize(
    ("reason", "description"),
    [
        ("malformed", "the bearer token is malformed"),
        ("unknown", "the bearer token is not known to the auth service"),
        ("revoked", "the bearer token has been revoked"),
        ("expired", "the bearer token has expired"),
    ],
)
def test_an_invalid_token_is_refused_without_being_echoed(
    world: World, reason: str, description: str
) -> None:
    if reason == "malformed":
        token = "amp_live_" + "x" * 43
    elif reason == "unknown":
        token = FakeAuthServer().add_token("elsewhere", ["read"]).token
    elif reason == "revoked":
        token = world.reader.token
        world.auth.revoke(world.reader.token_id)
    else:
        past = datetime.now(UTC) - timedelta(days=1)
        token = world.auth.add_token("old", ["read"], expires_at=past).token
    response = world.client.post("/read", json={}, headers=world.bearer(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'{REALM}, error="invalid_token", error_description="{description}"'
    )
    assert response.json() == {"error": "invalid_token", "detail": description}
    assert token not in response.text
    assert token not in str(response.headers)
    assert world.service.seen == []


def test_a_token_without_the_scopes_is_forbidden(world: World) -> None:
    response = world.client.put("/items/1", json={}, headers=world.bearer(world.reader.token))
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        f'{REALM}, error="insufficient_scope", scope="read write"'
    )
    assert response.json() == {
        "error": "insufficient_scope",
        "detail": "this action needs the scopes read, write; the token lacks write",
        "required_scopes": ["read", "write"],
        "missing_scopes": ["write"],
    }
    assert world.service.seen == []


def test_an_unreachable_auth_service_is_503_never_401_never_a_pass(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.auth.available = False
    response = world.client.post("/read", json={}, headers=world.bearer(world.reader.token))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "www-authenticate" not in response.headers
    assert response.json()["error"] == "auth_unavailable"
    assert world.service.seen == []
    assert world.reader.token not in caplog.text
    # Public actions never ask the auth service: health stays up.
    assert world.client.get("/health").json() == {"status": "healthy"}


def test_cached_validations_are_reused_when_the_cache_is_on() -> None:
    auth = FakeAuthServer()
    reader = auth.add_token("reader", ["read"])
    with service_client(Probe(), auth, cache_ttl=30) as client:
        for _ in range(3):
            response = client.post(
                "/read", json={}, headers={"Authorization": f"Bearer {reader.token}"}
            )
            assert response.status_code == 200
    assert auth.validation_requests() == 1


# -- what handlers get, and what they may answer ---------------------------------


def test_a_sync_handler_gets_typed_inputs_in_a_worker_thread(world: World) -> None:
    response = world.client.post(
        "/read?a=1&a=2&b=x",
        json={"n": 1},
        headers={**world.bearer(world.reader.token), "X-Trace": "t1"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"json": {"n": 1}, "caller": "reader"}
    [(request, caller, thread)] = world.service.seen
    assert caller == Caller(
        token_id=world.reader.token_id, name="reader", scopes=("read",), expires_at=None
    )
    assert (request.method, request.path, request.query) == ("POST", "/read", {"a": "2", "b": "x"})
    assert request.headers["x-trace"] == "t1"
    assert "authorization" not in request.headers  # a handler cannot leak the token
    assert thread != threading.main_thread().ident


def test_a_handler_learns_which_team_calls_it(world: World) -> None:
    team = world.auth.add_token("payments-api", ["read"], owner="payments")
    assert world.client.post("/read", json={}, headers=world.bearer(team.token)).status_code == 200
    [(_, caller, _)] = world.service.seen
    assert caller is not None
    assert caller.owner == "payments"
    world.client.post("/read", json={}, headers=world.bearer(world.reader.token))
    assert world.service.seen[-1][1] is not None
    assert world.service.seen[-1][1].owner is None


def test_an_async_handler_runs_in_the_loop_with_path_parameters(world: World) -> None:
    response = world.client.put("/items/42", json={}, headers=world.bearer(world.writer.token))
    assert response.json() == {"id": "42"}
    [(request, caller, _)] = world.service.seen
    assert request.path_params == {"item_id": "42"}
    assert caller is not None
    assert caller.scopes == ("read", "write", "extra")  # all the token's, not only the required
    assert caller.has_scopes("extra")


def test_a_body_that_is_not_json_is_a_400(world: World) -> None:
    response = world.client.post(
        "/read", content=b"{nope", headers=world.bearer(world.reader.token)
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_json")


def test_a_body_over_the_limit_is_413_declared_or_chunked(world: World) -> None:
    headers = world.bearer(world.reader.token)
    declared = world.client.post("/read", content=b"x" * 65, headers=headers)
    chunked = world.client.post("/read", content=iter([b"x" * 40, b"x" * 40]), headers=headers)
    assert declared.status_code == chunked.status_code == 413
    assert world.service.seen == []
    # The token is checked first: no anonymous client makes the service read a body.
    anonymous = world.client.post("/read", content=b"x" * 65)
    assert anonymous.status_code == 401


def test_handler_errors_and_results(world: World, caplog: pytest.LogCaptureFixture) -> None:
    refused = world.client.post("/refuses")
    assert (refused.status_code, refused.json()) == (
        404,
        {"error": "not_found", "detail": "no such order", "id": 7},
    )
    with caplog.at_level(logging.ERROR, logger="stateless_microservice"):
        failed = world.client.post("/fails", headers=world.bearer(world.reader.token))
    assert failed.status_code == 500
    assert "internal secret detail" not in failed.text  # logged, not answered
    assert "internal secret detail" in caplog.text
    created = world.client.post("/created")
    assert (created.status_code, created.headers["location"]) == (201, "/x/1")
    nothing = world.client.delete("/nothing")
    assert (nothing.status_code, nothing.content) == (204, b"")
    assert world.client.get("/point").json() == {"x": 1, "y": 2}


def test_unknown_paths_and_methods_answer_in_the_same_json_shape(world: World) -> None:
    missing = world.client.get("/nowhere")
    wrong = world.client.get("/read")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")


def test_action_error_must_be_an_error() -> None:
    with pytest.raises(ValueError, match="200 is not 4xx or 5xx"):
        ActionError("fine", status_code=200)


# -- the app's lifespan and its auth client ----------------------------------------


def test_the_auth_client_lives_and_dies_with_the_app() -> None:
    auth = FakeAuthServer()
    made: list[AsyncAuthClient] = []

    def factory() -> AsyncAuthClient:
        made.append(auth.async_client())
        return made[-1]

    service = Probe()
    app = service.create_app(auth_client=factory)
    assert made == []  # not at build time: the client belongs to the serving loop

    async def serve() -> None:
        async with app.router.lifespan_context(app):
            assert len(made) == 1
            assert service.events == ["start"]
        assert service.events == ["start", "stop"]

    asyncio.run(serve())
    assert made[0]._http.is_closed


def test_without_its_lifespan_the_app_fails_loudly(caplog: pytest.LogCaptureFixture) -> None:
    app = Probe().create_app(auth_client=FakeAuthServer().async_client)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/read", headers={"Authorization": "Bearer amp_live_x"})

    with caplog.at_level(logging.ERROR, logger="stateless_microservice"):
        response = asyncio.run(call())
    assert response.status_code == 500
    assert "serve the app with its lifespan" in caplog.text


def test_a_service_of_public_actions_needs_no_auth_service() -> None:
    class Open(StatelessService):
        def actions(self) -> list[StatelessAction]:
            return [StatelessAction(name="hi", path="/hi", method="GET", handler=self.hi)]

        def hi(self, request: ActionRequest) -> str:
            return "hi"

    def never() -> AsyncAuthClient:
        raise AssertionError("no protected action: no auth client")

    app = Open().create_app(auth_client=never)

    async def serve() -> None:
        async with app.router.lifespan_context(app):
            pass

    asyncio.run(serve())
    assert "securitySchemes" not in app.openapi().get("components", {})


def test_the_default_client_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AuthConfigError, match="AUTH_SERVICE_URL"):
        auth_client_from_environment()
    monkeypatch.setenv("AUTH_SERVICE_URL", "http://auth.test")
    assert isinstance(auth_client_from_environment(), AsyncAuthClient)


@pytest.mark.parametrize(("raw", "seconds"), [(None, 30.0), ("", 30.0), ("0", 0.0), ("2.5", 2.5)])
def test_auth_cache_ttl(monkeypatch: pytest.MonkeyPatch, raw: str | None, seconds: float) -> None:
    if raw is None:
        monkeypatch.delenv("AUTH_CACHE_TTL", raising=False)
    else:
        monkeypatch.setenv("AUTH_CACHE_TTL", raw)
    assert cache_ttl_from_environment() == seconds


@pytest.mark.parametrize("raw", ["soon", "-1", "inf", "nan"])
def test_a_bad_auth_cache_ttl_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("AUTH_CACHE_TTL", raw)
    with pytest.raises(
        AuthConfigError,
        match=f"AUTH_CACHE_TTL must be a number of seconds, zero or more, got '{raw}'",
    ):
        cache_ttl_from_environment()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUTH_SERVICE_URL": "http://a", "PORT": "http"}, "PORT must be a port number"),
        ({}, "AUTH_SERVICE_URL is not set"),
        ({"AUTH_SERVICE_URL": "http://a", "AUTH_CACHE_TTL": "x"}, "AUTH_CACHE_TTL must be"),
    ],
)
def test_run_refuses_a_bad_setting_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    message: str,
) -> None:
    for name in ("PORT", "HOST", "AUTH_CACHE_TTL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        Probe().run()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("test-service: ")
    assert message in err
    assert err.count("\n") == 1


# -- OpenAPI ------------------------------------------------------------------------


def test_openapi_shows_each_actions_security(world: World) -> None:
    schema = world.client.get("/openapi.json").json()
    assert schema["info"] == {
        "title": "test-service",
        "version": "0.1.0",
        "description": "A service that reports what its handlers were given.",
    }
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    item = schema["paths"]["/items/{item_id}"]["put"]
    assert item["operationId"] == "item"
    assert item["security"] == [{"bearerAuth": ["read", "write"]}]
    assert item["parameters"][0]["name"] == "item_id"
    assert {"401", "403", "503"} <= set(item["responses"])
    health = schema["paths"]["/health"]["get"]
    assert "security" not in health
    assert "401" not in health["responses"]
