"""The console's security properties, each checked against a real server: headers,
cookies, CSRF, escaping, sign-in refusals and throttling, no secret in URLs or logs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from amplify_auth_client import generate_token
from amplify_auth_server.models import utcnow
from tests.conftest import insert_token
from tests.console.conftest import browserless, create, csrf_of, in_thread
from tests.support.server import Backend, ServerProcess, running_server

if TYPE_CHECKING:
    from playwright.sync_api import Page

_FORM_ID = re.compile(r'name="form_id" value="([^"]+)"')
REFUSED = "That token cannot sign in: it is not a valid token that manages tokens."


def sign_in_over_http(client: httpx.Client, server: ServerProcess) -> None:
    form = client.get("/console/sign-in")
    response = client.post(
        "/console/sign-in",
        data={"csrf": csrf_of(form.text), "token": server.admin_token or ""},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/tokens"


def status_of(server: ServerProcess, token_id: str) -> str:
    with server.client() as admin:
        state: str = admin.get(f"/auth/tokens/{token_id}").json()["status"]
    return state


@pytest.fixture
def session(console: ServerProcess) -> Iterator[httpx.Client]:
    with browserless(console) as client:
        sign_in_over_http(client, console)
        yield client


# -- headers ---------------------------------------------------------------------


def test_every_console_response_carries_the_security_headers(
    console: ServerProcess, session: httpx.Client
) -> None:
    token_id = create(console, name="with-headers")["token_id"]
    paths = [
        "/console/sign-in",
        "/console/tokens",
        "/console/tokens?status=all&name=with",
        "/console/tokens/new",
        f"/console/tokens/{token_id}",
        f"/console/tokens/{token_id}/revoke",
        "/console/audit",
        "/console/audit/export?format=csv",
        "/console/health",
        "/console/static/console.js",
        "/console/static/console.css",
        "/console/no-such-page",
        "/console/tokens/tok_nosuchtoken00000",
        "/console/tokens?expires_within_days=abc",
        "/console/",
    ]
    for path in paths:
        response = session.get(path)
        assert response.status_code < 500, path
        headers = response.headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp, path
        assert "script-src 'self'" in csp, path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
        assert headers["cache-control"] == "no-store", path
    # A page that draws a refusal is HTML with its status, never a 500 or JSON.
    invalid = session.get("/console/tokens?expires_within_days=abc")
    assert invalid.status_code == 422
    assert invalid.headers["content-type"].startswith("text/html")
    assert session.get("/console/tokens/tok_nosuchtoken00000").status_code == 404


def test_no_inline_script_on_any_page(session: httpx.Client) -> None:
    for path in ("/console/tokens", "/console/tokens/new", "/console/audit", "/console/health"):
        html = session.get(path).text
        assert re.findall(r"<script[^>]*>", html) == [
            '<script src="/console/static/console.js" defer>'
        ], path
        assert re.search(r"<[^>]*\son[a-z]+\s*=", html) is None, path  # no onclick= etc.


# -- cookies -----------------------------------------------------------------------


def _set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def test_cookies_are_httponly_and_samesite_strict(console: ServerProcess) -> None:
    with browserless(console) as client:
        form = client.get("/console/sign-in")
        (pre,) = _set_cookies(form)
        signed = client.post(
            "/console/sign-in", data={"csrf": csrf_of(form.text), "token": console.admin_token}
        )
    cookies = [*_set_cookies(signed), pre]
    assert any(c.startswith("amplify_console=") for c in cookies)
    for cookie in cookies:
        attributes = [part.strip().lower() for part in cookie.split(";")]
        assert "httponly" in attributes, cookie
        assert "samesite=strict" in attributes, cookie
        assert "path=/console" in attributes, cookie
        assert "secure" not in attributes, cookie  # plain HTTP here, and not forced
        assert console.admin_token not in cookie


@pytest.fixture(scope="module")
def behind_tls_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A second server, told it is behind a proxy that terminates TLS."""
    backend = Backend("embedded", tmp_path_factory.mktemp("tls-proxy"))
    with running_server(backend, env={"CONSOLE_SECURE_COOKIES": "true"}) as process:
        yield process


def test_a_tls_proxy_setting_makes_every_cookie_secure(behind_tls_proxy: ServerProcess) -> None:
    with browserless(behind_tls_proxy) as client:
        form = client.get("/console/sign-in")
        data = {"csrf": csrf_of(form.text), "token": behind_tls_proxy.admin_token}
        # httpx keeps a Secure cookie for https only: send it back by hand.
        pre = form.cookies["amplify_console_signin"]
        cookie = {"Cookie": f"amplify_console_signin={pre}"}
        signed = client.post("/console/sign-in", data=data, headers=cookie)
    assert signed.status_code == 303
    for cookie in [*_set_cookies(form), *_set_cookies(signed)]:
        assert "secure" in [part.strip().lower() for part in cookie.split(";")], cookie


# -- CSRF ----------------------------------------------------------------------------


def test_a_forged_post_is_refused_and_changes_nothing(
    console: ServerProcess, session: httpx.Client
) -> None:
    victim = create(console, name="csrf-victim")["token_id"]
    form_id = _FORM_ID.search(session.get("/console/tokens/new").text)
    assert form_id is not None
    forged = {
        f"/console/tokens/{victim}/revoke": {},
        f"/console/tokens/{victim}/extend": {"days": "30"},
        f"/console/tokens/{victim}/rotate": {"grace_seconds": "0"},
        "/console/tokens/revoke": {"token_id": victim, "confirm": "yes"},
        "/console/tokens/new": {"form_id": form_id.group(1), "name": "forged", "scopes": "admin"},
        "/console/sign-out": {},
    }
    for path, data in forged.items():
        for csrf in (None, "", "not-the-token", csrf_of(session.get("/console/sign-in").text)):
            body = data if csrf is None else {**data, "csrf": csrf}
            response = session.post(path, data=body)
            assert response.status_code == 403, (path, csrf)
            assert "nothing was changed" in response.text
    with console.client() as admin:
        assert admin.get("/auth/tokens", params={"name": "forged"}).json()["items"] == []
        record = admin.get(f"/auth/tokens/{victim}").json()
    assert record["status"] == "active"
    assert record["expires_at"] is None
    assert record["replaced_by"] is None
    assert session.get("/console/tokens").status_code == 200  # still signed in


def test_a_json_post_is_refused(session: httpx.Client, console: ServerProcess) -> None:
    victim = create(console, name="json-victim")["token_id"]
    response = session.post(f"/console/tokens/{victim}/revoke", json={"csrf": "x"})
    assert response.status_code == 415
    assert status_of(console, victim) == "active"


def test_signing_in_needs_the_forms_own_csrf_token(console: ServerProcess) -> None:
    with browserless(console) as client:
        response = client.post("/console/sign-in", data={"token": console.admin_token})
        assert response.status_code == 403
        assert "amplify_console=" not in response.headers.get("set-cookie", "")


# -- escaping --------------------------------------------------------------------------

HOSTILE = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')


@pytest.mark.browser
def test_typed_values_show_as_text(admin_page: Page, console: ServerProcess) -> None:
    made = [
        create(
            console,
            name=name,
            description=f"about {name}",
            metadata={"note": name},
        )
        for name in HOSTILE
    ]
    dialogs: list[str] = []
    page = admin_page
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto("/console/tokens?status=all")
    for name in HOSTILE:
        assert page.get_by_role("link", name=name, exact=True).is_visible()
        assert page.get_by_label(f"Select {name}").count() == 1
    for created in made:
        page.goto(f"/console/tokens/{created['token_id']}")
        assert page.get_by_text(f"about {created['name']}", exact=True).is_visible()
        page.goto(f"/console/tokens/{created['token_id']}/revoke")
        assert page.get_by_text(created["name"], exact=True).is_visible()
    page.goto("/console/audit")
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("main script").count() == 0
    assert dialogs == []


@pytest.mark.browser
def test_a_hostile_name_typed_into_the_form_shows_as_text(admin_page: Page) -> None:
    dialogs: list[str] = []
    page = admin_page
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto("/console/tokens/new")
    page.get_by_label("Name").fill(HOSTILE[1])
    page.get_by_label("Scopes").fill("not a valid scope!")  # refused: the form comes back
    page.get_by_role("button", name="Create token").click()
    assert page.get_by_text("The token was not created:").is_visible()
    assert page.get_by_label("Name").input_value() == HOSTILE[1]
    assert page.locator("img[src=x]").count() == 0
    assert dialogs == []


# -- sign-in refusals ----------------------------------------------------------------


def _attempt(client: httpx.Client, token: str) -> httpx.Response:
    form = client.get("/console/sign-in")
    # Sent by hand: a Secure cookie (the TLS-proxy server's) is not sent over http.
    cookie = {"Cookie": f"amplify_console_signin={form.cookies['amplify_console_signin']}"}
    data = {"csrf": csrf_of(form.text), "token": token}
    return client.post("/console/sign-in", data=data, headers=cookie)


def test_a_wrong_token_says_so_without_telling_whether_it_exists(console: ServerProcess) -> None:
    revoked = create(console, name="revoked-admin", scopes=["admin"])
    with console.client() as admin:
        admin.post(f"/auth/tokens/{revoked['token_id']}/revoke").raise_for_status()
    candidates = {
        "unknown": generate_token(),
        "revoked": revoked["token"],
        "not an admin": create(console, name="reader")["token"],
        "expired": in_thread(
            lambda: insert_token(
                Backend("embedded", console.cwd), scopes=("admin",), expires_at=utcnow()
            )[0]
        ),
        "malformed": "amp_live_nope",
        "empty": "",
    }
    answers = set()
    with browserless(console) as client:
        for kind, token in candidates.items():
            response = _attempt(client, token)
            assert response.status_code == 401, kind
            assert REFUSED in response.text, kind
            assert "amplify_console=" not in response.headers.get("set-cookie", "")
            page = re.sub(r'value="[^"]*"', "", response.text)
            answers.add(page)
    assert len(answers) == 1  # byte for byte the same page, whatever the reason


def test_sign_in_attempts_are_throttled(behind_tls_proxy: ServerProcess) -> None:
    # The TLS-proxy server's own throttle: the main module server's stays clean.
    with browserless(behind_tls_proxy) as client:
        refusals = [_attempt(client, generate_token()).status_code for _ in range(10)]
        assert refusals == [401] * 10
        # Now even the right token is turned away, unchecked.
        throttled = _attempt(client, behind_tls_proxy.admin_token or "")
    assert throttled.status_code == 429
    assert "Too many sign-in attempts" in throttled.text
    assert "amplify_console=" not in throttled.headers.get("set-cookie", "")


# -- no secret where it does not belong ------------------------------------------------


def test_the_new_token_appears_only_on_its_creation_page(
    console: ServerProcess, session: httpx.Client
) -> None:
    form = session.get("/console/tokens/new").text
    data = {
        "csrf": csrf_of(form),
        "form_id": _FORM_ID.search(form).group(1),  # type: ignore[union-attr]
        "name": "secret-keeper",
        "scopes": "read",
    }
    created = session.post("/console/tokens/new", data=data)
    assert created.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    raw = re.search(r'id="new-token"[^>]*value="([^"]+)"', created.text)
    assert raw is not None
    token = raw.group(1)
    token_id = re.search(r"(tok_[A-Za-z0-9]{16})", created.text).group(1)  # type: ignore[union-attr]
    again = session.post("/console/tokens/new", data=data)  # the same form, sent again
    assert again.status_code == 303
    pages = [
        again,
        session.get("/console/tokens?status=all"),
        session.get(f"/console/tokens/{token_id}"),
        session.get("/console/audit"),
        session.get("/console/audit/export?format=jsonl"),
    ]
    for response in pages:
        assert token not in response.text
        assert token not in str(response.url)
        assert token not in response.headers.get("location", "")
    assert token not in Path(console.log_path).read_text(errors="replace")


def test_the_console_is_off_with_console_enabled_false(tmp_path: Path) -> None:
    backend = Backend("embedded", tmp_path)
    with (
        running_server(backend, env={"CONSOLE_ENABLED": "false"}) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        for path in ("/console/", "/console/sign-in", "/console/static/console.js"):
            assert client.get(path).status_code == 404, path
        assert client.get("/health").status_code == 200


# -- refusals are pages, and change nothing ----------------------------------------


def test_bad_input_is_a_clear_page_never_a_500(
    console: ServerProcess, session: httpx.Client
) -> None:
    token_id = create(console, name="bad-input")["token_id"]
    csrf = csrf_of(session.get("/console/tokens").text)
    cases = {
        ("GET", "/console/tokens?cursor=not-a-cursor"): 422,
        ("GET", "/console/tokens?status=sideways"): 422,
        ("GET", "/console/audit?since=yesterday"): 422,
        ("GET", "/console/audit?token=tok_nosuchtoken00000"): 404,
        ("GET", "/console/audit/export?format=xml"): 422,
        ("GET", "/console/sign-out"): 405,
        ("GET", f"/console/tokens/{'x' * 65}"): 422,
        ("GET", "/console/tokens/amp_live_notatokenid"): 404,
    }
    for (method, path), expected in cases.items():
        response = session.request(method, path)
        assert response.status_code == expected, (path, response.text[:300])
        assert response.headers["content-type"].startswith("text/html"), path
        assert "amp_live_notatokenid" not in response.text
    # A change refused by its rules says why on the next page, and changes nothing.
    extended = session.post(
        f"/console/tokens/{token_id}/extend",
        data={"csrf": csrf, "days": "0"},
        follow_redirects=True,
    )
    assert "Not extended:" in extended.text
    never = session.post(
        f"/console/tokens/{token_id}/extend",
        data={"csrf": csrf, "days": "5"},
        follow_redirects=True,
    )
    assert "Not extended: token " in never.text
    assert "never expires" in never.text
    assert 'action="/console/tokens/' + token_id + '/extend"' not in never.text  # no such form
    for grace, idle in (("-1", ""), ("soon", ""), ("600", "601"), ("600", "60"), ("99999999", "")):
        rotated = session.post(
            f"/console/tokens/{token_id}/rotate",
            data={"csrf": csrf, "grace_seconds": grace, "finish_when_idle_seconds": idle},
            follow_redirects=True,
        )
        assert rotated.status_code == 200, rotated.text[:300]
        assert "Not rotated:" in rotated.text, grace
        assert "amp_live_" not in rotated.text
    empty = session.post("/console/tokens/revoke", data={"csrf": csrf}, follow_redirects=True)
    assert "Nothing revoked:" in empty.text
    assert status_of(console, token_id) == "active"
    with console.client() as admin:
        assert admin.get(f"/auth/tokens/{token_id}").json()["expires_at"] is None
        assert admin.get(f"/auth/tokens/{token_id}").json()["replaced_by"] is None


def test_the_audit_log_filters_by_token_and_time(
    console: ServerProcess, session: httpx.Client
) -> None:
    token_id = create(console, name="audit-filtered", ttl_days=1)["token_id"]
    csrf = csrf_of(session.get("/console/tokens").text)
    session.post(f"/console/tokens/{token_id}/extend", data={"csrf": csrf, "days": "5"})
    page = session.get(
        "/console/audit", params={"token": token_id, "since": "2000-01-01T00:00:00Z"}
    )
    assert page.status_code == 200
    rows = re.findall(r"<tr>\s*<td><time[^>]*>[^<]*</time></td>\s*<td>([a-z_]+)</td>", page.text)
    assert rows == ["extend", "create"]
    export = session.get("/console/audit/export", params={"token": token_id, "format": "jsonl"})
    assert [line.count(token_id) > 0 for line in export.text.splitlines()] == [True, True]
    assert export.headers["content-disposition"] == 'attachment; filename="audit.jsonl"'
    future = session.get(
        "/console/audit", params={"token": token_id, "until": "2000-01-01T00:00:00Z"}
    )
    assert "No entries match." in future.text


def test_the_health_screen_counts_cache_lookups(
    console: ServerProcess, session: httpx.Client
) -> None:
    created = create(console, name="looked-up")
    with console.client(token=None) as client:
        for _ in range(3):
            client.post("/auth/validate", json={"token": created["token"]})
    html = session.get("/console/health").text
    assert re.search(r"Local cache hit ratio</th><td>\d+\.\d% of \d+ lookups", html)
