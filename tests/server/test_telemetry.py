"""Server spans: one per request and per writer command, only when an SDK is configured."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def test_requests_and_commands_are_traced_without_a_token() -> None:
    code = textwrap.dedent(
        """
        import asyncio, json, tempfile, os
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        trace.set_tracer_provider(provider)

        import httpx
        from amplify_auth_client import generate_token
        admin = generate_token()
        os.environ["AUTH_ADMIN_TOKEN"] = admin
        os.environ["DATABASE_URL"] = "sqlite:///" + tempfile.mkdtemp() + "/auth.db"
        from amplify_auth_server.app import create_app

        async def main():
            app = create_app()
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    bearer = {"Authorization": f"Bearer {admin}"}
                    made = await c.post("/auth/tokens", json={"name": "a", "scopes": ["read"]},
                                        headers=bearer)
                    token = made.json()["token"]
                    await c.post("/auth/validate", json={"token": token})
                    return token

        token = asyncio.run(main())
        found = [{"name": s.name, "attributes": dict(s.attributes)}
                 for s in spans.get_finished_spans()]
        print(json.dumps({"spans": found, "token": token}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    names = [span["name"] for span in data["spans"]]
    assert "command CreateToken" in names
    assert "POST /auth/tokens" in names
    assert "POST /auth/validate" in names
    validate = next(s for s in data["spans"] if s["name"] == "POST /auth/validate")
    assert validate["attributes"]["http.response.status_code"] == 200
    assert data["token"] not in json.dumps(data["spans"])


def test_without_a_configured_sdk_nothing_is_added() -> None:
    from amplify_auth_server import telemetry

    assert not telemetry.enabled()
