"""OpenTelemetry: spans for calls that leave the process, metrics read on demand, no token in them.

Each test runs in a fresh interpreter: OpenTelemetry's providers are set once
per process, and no other test should run with them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    from amplify_auth_client.testing import FakeAuthServer, set_testing

    set_testing(True)
    server = FakeAuthServer()
    created = server.add_token("reporting", ["read"])
    client = server.client()
    for _ in range(3):
        client.validate(created.token, ["read"])   # one miss, two hits
    client.validate("amp_live_garbage")            # answered locally: no request
    client.revoke_token(created.token_id)
    server.available = False
    try:
        client.validate(created.token)
    except Exception:
        pass

    found = [
        {"name": s.name, "attributes": dict(s.attributes), "status": s.status.status_code.name,
         "events": [dict(e.attributes or {}) for e in s.events]}
        for s in spans.get_finished_spans()
    ]
    points = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = [p.value for p in metric.data.data_points]
    print(json.dumps({"spans": found, "metrics": points, "token": created.token}))
    """
)


def run() -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_spans_for_misses_and_management_calls_only_and_never_a_token() -> None:
    data = run()
    spans = data["spans"]
    assert isinstance(spans, list)
    names = [span["name"] for span in spans]
    # One miss (hits and the malformed token send nothing), the revoke, the failed miss.
    assert names == ["amplify_auth.validate", "amplify_auth.revoke_token", "amplify_auth.validate"]
    miss, revoke, failed = spans
    assert miss["attributes"]["http.response.status_code"] == 200
    assert miss["attributes"]["server.address"] == "http://auth.test"
    assert revoke["attributes"]["amplify_auth.token_id"].startswith("tok_")
    assert failed["status"] == "ERROR"
    assert failed["attributes"]["amplify_auth.attempts"] == 4
    assert str(data["token"]) not in json.dumps(spans)


def test_cache_metrics_are_observed_from_the_clients_counters() -> None:
    metrics = run()["metrics"]
    assert isinstance(metrics, dict)
    assert metrics["amplify_auth.client.cache.hits"] == [2]
    assert metrics["amplify_auth.client.cache.misses"] == [2]
    assert metrics["amplify_auth.client.cache.errors"] == [1]
    assert metrics["amplify_auth.client.subscription.live"] == [0]


def test_without_opentelemetry_the_sdk_works_and_loads_none_of_it() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None
        from amplify_auth_client.testing import FakeAuthServer
        server = FakeAuthServer()
        token = server.add_token("a", ["read"]).token
        assert server.client().validate(token, ["read"]).valid
        from amplify_auth_client import _telemetry
        assert _telemetry.AVAILABLE is False
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
