"""auth-cli audit-routes lists each route's requirement and fails CI on an unprotected one."""

from __future__ import annotations

import json

import pytest

from amplify_auth_client._cli._main import main


def test_a_well_kept_app_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit-routes", "tests.cli.audit_apps:kept"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[1]: line for line in out.splitlines()}
    assert "orders:read" in lines["/orders"]
    assert "orders:write, max_staleness=0" in lines["/orders/{order_id}"]
    assert "public" in lines["/health"]
    assert "FastAPI documentation" in lines["/docs"]


def test_an_unprotected_route_fails_with_its_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "audit-routes", "tests.cli.audit_apps:forgotten"]) == 1
    captured = capsys.readouterr()
    routes = {r["path"]: r for r in json.loads(captured.out)}
    assert routes["/admin/purge"]["access"] == "unprotected"
    assert routes["/orders"]["access"] == "protected"
    assert "1 route(s) neither protected nor declared public" in captured.err


def test_the_middleware_protects_all_but_its_public_paths(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--json", "audit-routes", "tests.cli.audit_apps:guarded"]) == 0
    routes = {r["path"]: r["access"] for r in json.loads(capsys.readouterr().out)}
    assert routes == {"/hello": "protected", "/health": "public"}


def test_a_stateless_service_lists_its_actions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "audit-routes", "examples.authenticated_service.app:app"]) == 0
    routes = {r["path"]: r for r in json.loads(capsys.readouterr().out)}
    assert routes["/echo"]["requires"] == "read"
    assert routes["/process"]["requires"] == "read write"
    assert routes["/health"]["access"] == "public"


@pytest.mark.parametrize("target", ["nocolon", "tests.cli.audit_apps:nothing", "no_such_mod:app"])
def test_a_wrong_target_is_a_usage_error(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit-routes", target]) == 2
    assert "auth-cli: error:" in capsys.readouterr().err
