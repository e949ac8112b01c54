"""The server takes exactly what its contract allows, refuses the rest with a clear 4xx, and
stores what it took unchanged."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amplify_auth_client import generate_token
from tests.server.conftest import create
from tests.support.server import Backend, ServerProcess, running_server

JSON = {"content-type": "application/json"}


# -- the create rules, as docs/server.md states them (not as the code does) -----


# docs/server.md: names and metadata keys: no control character, no space at
# either end; descriptions and metadata values: no control character but tab
# and newline. Control characters are U+0000 to U+001F and U+007F.
def _control(c: str) -> bool:
    return ord(c) < 0x20 or ord(c) == 0x7F


def _label(value: Any, longest: int) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= longest
        and not any(map(_control, value))
        and value[0] != " "
        and value[-1] != " "
    )


def _text(value: Any, longest: int) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= longest
        and not any(_control(c) and c not in "\t\n" for c in value)
    )


def _scope(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:/*-]{0,63}", value)


def _days(value: Any) -> bool:
    return type(value) is int and 1 <= value <= 36_500


def documented(body: dict[str, Any]) -> bool:
    """Whether docs/server.md says this create body is accepted."""
    scopes = body["scopes"]
    metadata = body.get("metadata")
    return (
        _label(body["name"], 100)
        and isinstance(scopes, list)
        and 1 <= len(scopes) <= 50
        and all(map(_scope, scopes))
        and len(set(scopes)) == len(scopes)
        and (body.get("ttl_days") is None or _days(body["ttl_days"]))
        and (body.get("description") is None or _text(body["description"], 1000))
        and (
            metadata is None
            or (
                isinstance(metadata, dict)
                and len(metadata) <= 20
                and all(_label(k, 64) and _text(v, 500) for k, v in metadata.items())
            )
        )
    )


# Characters that sit at the rules' edges: controls, the space, tab and
# newline, and a few beyond ASCII.
_EDGES = st.sampled_from(
    ["\x00", "\x01", "\x1f", "\x7f", " ", "\t", "\n", "\r", "é", "\u00a0", "😀"]
)
_CHARS = st.one_of(st.characters(codec="utf-8", exclude_categories=("Cs",)), _EDGES)


def _strings(longest: int) -> st.SearchStrategy[str]:
    """Any text near the rules' edges: lengths around ``longest``, edge characters."""
    around = st.text(_CHARS, min_size=0, max_size=4)
    edge_length = st.integers(max(longest - 2, 0), longest + 2).map(lambda n: "x" * n)
    return st.one_of(around, edge_length, st.tuples(around, edge_length, around).map("".join))


_PRINTABLE = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))


def _labels(longest: int) -> st.SearchStrategy[str]:
    """Mostly what the rules allow, sometimes anything."""
    allowed = st.text(_PRINTABLE, min_size=1, max_size=min(longest, 12)).filter(
        lambda v: v[0] != " " and v[-1] != " "
    )
    return st.one_of(allowed, allowed, _strings(longest))


def _texts(longest: int) -> st.SearchStrategy[str]:
    allowed = st.text(st.one_of(_PRINTABLE, st.sampled_from("\t\n ")), max_size=12)
    return st.one_of(allowed, allowed, _strings(longest))


_SCOPE = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:/*-]{0,8}\Z")
_SCOPES = st.one_of(
    st.lists(_SCOPE, min_size=1, max_size=4, unique=True),
    st.lists(_SCOPE, min_size=1, max_size=4, unique=True),
    st.lists(st.one_of(_SCOPE, _strings(64), st.just("x" * 65)), max_size=4),
    st.lists(st.just("a"), min_size=2, max_size=2),
    st.lists(_SCOPE, min_size=51, max_size=51, unique=True),
)
_NUMBERS = st.one_of(
    st.integers(1, 36_500),
    st.integers(-2, 40_000),
    st.sampled_from([0, 1, 36_500, 36_501]),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["5", " 7 ", "3.0"]),
    st.none(),
)
CREATE_BODIES = st.fixed_dictionaries(
    {"name": _labels(100), "scopes": _SCOPES},
    optional={
        "ttl_days": _NUMBERS,
        "description": st.one_of(st.none(), _texts(1000)),
        "metadata": st.one_of(
            st.none(),
            st.dictionaries(_labels(64), _texts(500), max_size=3),
            st.dictionaries(st.text("k", min_size=1, max_size=25), st.just("v"), min_size=21),
        ),
    },
)


@pytest.fixture(scope="module")
def property_server(backend: Backend) -> Iterator[ServerProcess]:
    with running_server(backend) as process:
        yield process


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=CREATE_BODIES)
def test_create_takes_exactly_what_the_docs_allow_and_stores_it_unchanged(
    property_server: ServerProcess, body: dict[str, Any]
) -> None:
    with property_server.client() as admin:
        response = admin.post("/auth/tokens", json=body)
        if not documented(body):
            assert response.status_code == 422, (body, response.text)
            return
        assert response.status_code == 201, (body, response.text)
        created = response.json()
        stored = admin.get(f"/auth/tokens/{created['token_id']}").json()
    for field in ("name", "scopes", "description", "metadata"):
        assert created[field] == stored[field] == body.get(field), field
    ttl = body.get("ttl_days")
    if ttl is None:
        assert stored["expires_at"] is None
    else:
        lifetime = datetime.fromisoformat(stored["expires_at"]) - datetime.fromisoformat(
            stored["created_at"]
        )
        assert lifetime.days == ttl


# -- the perimeter -------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/auth/validate", "/auth/tokens", "/auth/audit", "/health", "/auth/events"]
)
@pytest.mark.parametrize("encode", [str, quote], ids=["plain", "percent-encoded"])
def test_a_token_in_the_query_is_400_before_anything_reads_it(
    admin: httpx.Client, path: str, encode: Any
) -> None:
    token = generate_token()
    response = admin.get(f"{path}?token={encode(token)}")
    assert response.status_code == 400
    assert response.json()["error"] == "token_in_url"
    assert token not in response.text


def test_every_operation_documents_the_400_of_a_token_in_its_query(
    anonymous: httpx.Client,
) -> None:
    # The refusal comes before routing, so any operation may answer it:
    # the schema says so for each (schemathesis found the audit log's
    # undocumented, from an `actor=amp_live_` it made up).
    paths = anonymous.get("/openapi.json").json()["paths"]
    undocumented = [
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "400" not in operation["responses"]
    ]
    assert undocumented == []
    assert anonymous.get("/auth/audit?actor=amp_live_").json()["error"] == "token_in_url"


def test_no_token_reaches_the_access_log(backend: Backend) -> None:
    token = generate_token()
    with running_server(backend, env={"ACCESS_LOG": "true"}) as server, server.client() as admin:
        assert admin.get(f"/auth/tokens/{token}").status_code == 404
        assert admin.get(f"/health?x={quote(token)}").status_code == 400
        assert admin.get("/health").status_code == 200
        log = server.log()
    assert '"GET /health HTTP/1.1" 200' in log  # the access log is on
    assert "/auth/tokens/[redacted]" in log
    assert token not in log
    assert token[:20] not in log


@pytest.mark.parametrize(
    "body",
    [
        b'{"token": "x", "token": "y"}',
        # An unknown field makes the shortcut parse again: still refused.
        b'{"other": 1, "token": "x", "token": "y"}',
        b'{"token": "x", "required_scopes": [], "required_scopes": ["admin"]}',
        b'{"t\\u006fken": "x", "token": "y"}',
    ],
    ids=["twice", "with an unknown field", "scopes twice", "escaped"],
)
def test_a_key_given_twice_is_refused_by_validation(anonymous: httpx.Client, body: bytes) -> None:
    response = anonymous.post("/auth/validate", content=body, headers=JSON)
    assert response.status_code == 422
    assert "twice" in response.json()["detail"]


def test_a_validation_with_an_unknown_field_is_still_answered(anonymous: httpx.Client) -> None:
    # Unknown fields are ignored by validation (newer clients, older servers).
    body = b'{"newer": {"a": "\\":"}, "token": "amp_live_x"}'
    response = anonymous.post("/auth/validate", content=body, headers=JSON)
    assert response.json()["reason"] == "malformed"


def test_a_nested_key_given_twice_is_refused_by_management(admin: httpx.Client) -> None:
    body = b'{"name": "n", "scopes": ["read"], "metadata": {"k": "1", "k": "2"}}'
    response = admin.post("/auth/tokens", content=body, headers=JSON)
    assert response.status_code == 422
    assert all(t["name"] != "n" for t in admin.get("/auth/tokens").json()["items"])


@pytest.mark.parametrize("path", ["/auth/validate", "/auth/tokens"])
def test_bytes_that_are_not_utf8_are_a_422_everywhere(admin: httpx.Client, path: str) -> None:
    response = admin.post(path, content=b'{"token": "\xff\xfe"}', headers=JSON)
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "json_invalid"


def test_no_key_a_client_sent_is_echoed_in_an_error(admin: httpx.Client) -> None:
    secret = generate_token()
    for body in (
        {"name": "n", "scopes": ["read"], secret: 1},
        {"name": "n", "scopes": ["read"], "metadata": {secret: "\x00"}},
        {"name": "n", "scopes": ["read"], "metadata": {f" {secret}": "v"}},
    ):
        response = admin.post("/auth/tokens", json=body)
        assert response.status_code == 422
        assert secret not in response.text
        assert any("*" in error["loc"] for error in response.json()["errors"])


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("limit=%205", "limit"),
        ("limit=5%20", "limit"),
        ("limit=%2B5", "limit"),
        ("limit=5.0", "limit"),
        ("limit=1e2", "limit"),
        ("limit[]=1", "limit[]"),
        ("limit=5&limit=5", "limit"),
        ("lmit=5", "lmit"),
    ],
)
def test_query_numbers_are_digits_and_parameters_are_known(
    admin: httpx.Client, query: str, named: str
) -> None:
    for path in ("/auth/audit", "/auth/tokens"):
        response = admin.get(f"{path}?{query}")
        assert response.status_code == 422, (path, query)
        locations = [error["loc"] for error in response.json()["errors"]]
        if path == "/auth/audit" or named != "limit":
            assert ["query", named] in locations
    assert admin.get("/auth/audit?limit=5").status_code == 200


def test_every_route_refuses_an_unknown_parameter(admin: httpx.Client) -> None:
    token_id = create(admin)["token_id"]
    for method, path in [
        ("POST", "/auth/validate"),
        ("GET", f"/auth/tokens/{token_id}"),
        ("POST", f"/auth/tokens/{token_id}/revoke"),
        ("GET", "/health"),
        ("GET", "/metrics"),
        ("GET", "/auth/events"),
    ]:
        response = admin.request(method, f"{path}?verbose=1", json={"token": "x"})
        assert response.status_code == 422, (method, path)
        assert response.json()["errors"][0]["loc"] == ["query", "verbose"]
    assert admin.get(f"/auth/tokens/{token_id}").json()["status"] == "active"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/auth/tokens", "GET, POST"),
        ("OPTIONS", "/auth/tokens", "GET, POST"),
        ("GET", "/auth/validate", "POST"),
        ("DELETE", "/auth/tokens/tok_0123456789abcdef", "GET"),
    ],
)
def test_405_names_every_method_of_the_path(
    admin: httpx.Client, method: str, path: str, allow: str
) -> None:
    response = admin.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow


@pytest.mark.parametrize(
    ("field", "value"),
    [("ttl_days", True), ("ttl_days", "5"), ("ttl_days", " 7 "), ("ttl_days", 3.0)],
)
def test_numbers_in_bodies_are_strict(admin: httpx.Client, field: str, value: Any) -> None:
    response = admin.post("/auth/tokens", json={"name": "strict", "scopes": ["r"], field: value})
    assert response.status_code == 422
    token_id = create(admin, ttl_days=1)["token_id"]
    for days in (True, "1", 1.0):
        extended = admin.post(f"/auth/tokens/{token_id}/extend", json={"days": days})
        assert extended.status_code == 422, days
    assert all(t["name"] != "strict" for t in admin.get("/auth/tokens").json()["items"])


def test_the_openapi_document_states_the_rules(anonymous: httpx.Client) -> None:
    schemas = anonymous.get("/openapi.json").json()["components"]["schemas"]
    create_body = schemas["CreateTokenRequest"]["properties"]
    assert "pattern" in create_body["name"]
    assert create_body["scopes"]["uniqueItems"] is True
    description = json.dumps(create_body["description"])
    metadata = json.dumps(create_body["metadata"])
    assert "pattern" in description
    assert "pattern" in metadata
