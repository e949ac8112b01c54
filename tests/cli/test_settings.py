"""auth-cli finds the server and the admin token; the token file as the server does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from amplify_auth_client import generate_token
from amplify_auth_client._cli._settings import admin_token, admin_token_file, auth_url, is_local
from amplify_auth_server.config import Settings
from tests.cli.conftest import CLIServer, assert_one_line_error, run_auth_cli


@pytest.mark.parametrize(
    "environment",
    [
        {},
        {"DATABASE_URL": ""},
        {"DATABASE_URL": "sqlite:///auth.db"},
        {"DATABASE_URL": "sqlite:///data/tokens.sqlite3"},
        {"DATABASE_URL": "sqlite:////var/lib/amplify/auth.db"},
        {"DATABASE_URL": "sqlite+aiosqlite:///x/y.db?timeout=5"},
        {"DATABASE_URL": "postgresql://u:p@db:5432/auth"},
        {"ADMIN_TOKEN_FILE": "/run/secrets/admin"},
        {"ADMIN_TOKEN_FILE": "here.token", "DATABASE_URL": "sqlite:///elsewhere.db"},
    ],
    ids=lambda env: ",".join(f"{k}={v}" for k, v in env.items()) or "unset",
)
def test_the_token_file_is_where_the_server_puts_it(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here for the server's settings to read
    monkeypatch.delenv("ADMIN_TOKEN_FILE", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert admin_token_file() == Settings().resolved_admin_token_file


def test_the_url_comes_from_the_option_then_auth_url_then_the_sdk_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert auth_url(None) == "http://localhost:8000"
    monkeypatch.setenv("AUTH_SERVICE_URL", "http://sdk:1")
    assert auth_url(None) == "http://sdk:1"
    monkeypatch.setenv("AUTH_URL", "http://cli:2")
    assert auth_url(None) == "http://cli:2"
    assert auth_url("http://option:3") == "http://option:3"


def test_the_token_comes_from_the_option_then_the_variable_then_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADMIN_TOKEN_FILE", raising=False)
    (tmp_path / "amplify_auth.admin-token").write_text("from-file\n")
    local = "http://127.0.0.1:8000"
    assert admin_token(None, local).value == "from-file"
    monkeypatch.setenv("AUTH_ADMIN_TOKEN", "from-env")
    assert admin_token(None, local).value == "from-env"
    found = admin_token("from-option", local)
    assert (found.value, found.source) == ("from-option", "--admin-token")


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://localhost:8000", True),
        ("http://127.0.0.1:8000", True),
        ("http://127.8.9.10", True),
        ("http://[::1]:8000", True),
        ("http://api.localhost", True),
        ("https://auth.example.com", False),
        ("http://10.0.0.5:8000", False),
        ("http://localhost.example.com", False),
        ("not a url", False),
    ],
)
def test_only_loopback_urls_are_local(url: str, local: bool) -> None:
    assert is_local(url) is local


def test_the_token_file_is_never_sent_to_another_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "amplify_auth.admin-token").write_text(generate_token() + "\n")
    found = admin_token(None, "https://auth.example.com")
    assert found.value is None
    assert "only sent to a server on this machine" in found.source


def test_the_installed_script_uses_the_servers_token_file(
    cli_server: CLIServer, tmp_path: Path
) -> None:
    # As in the quick start: run from the server's directory, no secret exported.
    result = run_auth_cli("--auth-url", cli_server.url, "--json", "list", cwd=cli_server.directory)
    assert result.code == 0, result
    assert "admin (bootstrap)" in {token["name"] for token in result.json()}
    # Elsewhere, pointed at the file by the server's own setting.
    shutil.copy(cli_server.directory / "amplify_auth.admin-token", tmp_path / "copied.token")
    env = {"AUTH_URL": cli_server.url, "ADMIN_TOKEN_FILE": str(tmp_path / "copied.token")}
    assert run_auth_cli("--json", "list", cwd=tmp_path, env=env).code == 0
    # And with neither: one line saying where it looked.
    missing = run_auth_cli("list", cwd=tmp_path, env={"AUTH_URL": cli_server.url})
    assert_one_line_error(missing, 4, "no admin token", "amplify_auth.admin-token (not found)")


def test_a_stale_token_file_is_named_in_the_error(cli_server: CLIServer, tmp_path: Path) -> None:
    (tmp_path / "amplify_auth.admin-token").write_text(generate_token() + "\n")
    result = run_auth_cli("list", cwd=tmp_path, env={"AUTH_URL": cli_server.url})
    assert_one_line_error(
        result, 4, "HTTP 401", "admin token from the admin token file amplify_auth.admin-token"
    )
