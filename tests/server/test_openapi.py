"""The OpenAPI document and the server agree: schemathesis sends what the document allows
(and what it forbids) to every operation of a real server, one at a time and in sequences,
and checks every answer against the document."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.schemas import OpenApiSchema

from amplify_auth_client.contract import DEFAULT_GRACE_SECONDS, MIN_FINISH_WHEN_IDLE_SECONDS
from tests.support.server import ServerProcess

#: Bounded, so that the suite stays fast: every operation still gets examples
#: of each kind (valid, invalid), and the sequences reach past creation.
EXAMPLES = 30
STEPS = 40
_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> OpenApiSchema:
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    assert isinstance(schema, OpenApiSchema)

    @schema.hook  # type: ignore[misc]
    def map_body(context: Any, body: Any) -> Any:
        # JSON Schema counts 3.0 as an integer; the server, on purpose, does
        # not (docs/server.md; tests/server/test_strict_input.py): integers
        # are sent written as integers here, at any depth.
        if not POSITIVE["now"]:
            return body
        return _within_grace(_integers(body))

    @schema.hook  # type: ignore[misc]
    def map_query(context: Any, query: Any) -> Any:
        if not POSITIVE["now"]:
            return query
        # What a schema cannot say, tested in tests/server/test_listing.py: a
        # cursor is one the server signed (any other is a 422), and all=true
        # means status=all (a query saying both, differently, is a 422).
        if isinstance(query, dict):
            query = {k: v for k, v in query.items() if k != "cursor"}
            if "status" in query:
                query.pop("all", None)
        return query

    @schema.hook  # type: ignore[misc]
    def map_headers(context: Any, headers: Any) -> Any:
        # The same Idempotency-Key with another body is a 422 on purpose
        # (tests/server/test_idempotency.py); generated keys repeat ("0"),
        # so each positive case sends a key of its own.
        if not POSITIVE["now"] or not isinstance(headers, dict):
            return headers
        if "Idempotency-Key" in headers:
            headers = {**headers, "Idempotency-Key": str(uuid.uuid4())}
        return headers

    # An event stream never ends: it is tested in tests/server/test_events.py.
    return schema.exclude(path="/auth/events")  # type: ignore[return-value]


#: Whether the cases being generated are positive ones (the hooks above
#: adjust only those: a negative case must keep what makes it negative).
POSITIVE = {"now": True}


def _integers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integers(v) for v in value]
    return value


def _within_grace(body: Any) -> Any:
    # What a schema cannot say, tested in tests/server/test_rotation.py: a
    # rotation's finish_when_idle_seconds is at most its grace_seconds.
    if not isinstance(body, dict) or not isinstance(body.get("finish_when_idle_seconds"), int):
        return body
    grace = body.get("grace_seconds", DEFAULT_GRACE_SECONDS)
    if not isinstance(grace, int) or body["finish_when_idle_seconds"] <= grace:
        return body
    if grace < MIN_FINISH_WHEN_IDLE_SECONDS:
        return {k: v for k, v in body.items() if k != "finish_when_idle_seconds"}
    return {**body, "finish_when_idle_seconds": grace}


def _auth(server: ServerProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.admin_token}"}


@pytest.mark.parametrize("mode", list(GenerationMode), ids=str)
def test_every_operation_answers_as_documented(
    api: OpenApiSchema, server: ServerProcess, mode: GenerationMode
) -> None:
    # One Hypothesis run per operation (schemathesis's own pytest loader does
    # not run on this pytest); every failure is reported, not only the first.
    failures: dict[str, BaseException] = {}
    POSITIVE["now"] = mode is GenerationMode.POSITIVE
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @_SETTINGS
        def run(case: Any) -> None:
            case.call_and_validate(headers=_auth(server), timeout=30)

        try:
            run()
        except Unsatisfiable:
            # Negative mode, for an operation that takes nothing: nothing to break.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:
            failures[operation.label] = exc
    assert not failures, "\n\n".join(f"{label}: {exc}" for label, exc in failures.items())


def test_sequences_of_operations_answer_as_documented(
    api: OpenApiSchema, server: ServerProcess
) -> None:
    headers = _auth(server)

    class Machine(api.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers, "timeout": 30}

    POSITIVE["now"] = True
    Machine.run(settings=settings(_SETTINGS, max_examples=5, stateful_step_count=STEPS))
