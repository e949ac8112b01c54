"""The console's journeys in a real browser (Chromium), against a real server process."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from amplify_auth_client import AuthClient, generate_token
from tests.console.conftest import create, insert_tokens, sign_in
from tests.support.browser import screenshot
from tests.support.server import ServerProcess
from tests.support.waiting import wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_signing_in_lands_on_the_tokens_list(
    page: Page, console: ServerProcess, screenshots: Path
) -> None:
    page.goto("/console/")
    page.wait_for_url("**/console/sign-in")
    screenshot(page, screenshots / "sign-in.png")
    assert console.admin_token is not None
    sign_in(page, console.admin_token)
    assert page.get_by_role("heading", name="Tokens").is_visible()
    assert page.get_by_role("button", name="Sign out").is_visible()


def test_a_created_token_is_copied_and_validates_and_is_shown_once(
    admin_page: Page, console: ServerProcess, screenshots: Path
) -> None:
    page = admin_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("link", name="Create a token").click()
    page.get_by_label("Name").fill("copied-in-the-browser")
    page.get_by_label("Scopes").fill("read, write")
    page.get_by_label("Expires in (days)").fill("30")
    page.get_by_label("Description").fill("made by the console test")
    page.get_by_label("Metadata").fill("team=payments")
    screenshot(page, screenshots / "create.png", full_page=True)
    page.get_by_role("button", name="Create token").click()
    page.get_by_role("button", name="Copy token").click()
    page.get_by_text("Copied to the clipboard.").wait_for()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.get_by_label("New token for copied-in-the-browser").input_value()
    # The docs show where the token appears, not a token.
    secret = page.get_by_label("New token for copied-in-the-browser")
    screenshot(page, screenshots / "created.png", full_page=True, mask=[secret])
    assert "/tokens/new" in page.url
    assert copied not in page.url

    with AuthClient(console.base_url) as client:
        result = client.validate(copied, required_scopes=["write"])
    assert result.valid
    assert result.name == "copied-in-the-browser"

    page.reload()  # sends the form again: it creates nothing, shows nothing
    assert copied not in page.content()
    assert page.get_by_text("That form was already sent").is_visible()
    page.go_back()
    assert copied not in page.content()
    with console.client() as admin:
        named = admin.get("/auth/tokens", params={"name": "copied-in-the-browser"}).json()
    assert len(named["items"]) == 1  # the reload created no second token


def test_revoking_from_the_detail_page_reaches_a_subscribed_sdk(
    admin_page: Page, console: ServerProcess, screenshots: Path
) -> None:
    created = create(console, name="revoked-in-the-browser", description="to revoke", ttl_days=30)
    with AuthClient(console.base_url, cache_ttl=3600, subscribe_revocations=True) as client:
        client.validate(generate_token())  # starts the subscription
        wait_for(lambda: client.cache_stats().subscription == "live")
        assert client.validate(created["token"]).valid
        assert client.validate(created["token"]).cached

        page = admin_page
        page.get_by_label("Name starts with").fill("revoked-in-the")
        page.get_by_role("button", name="Filter").click()
        page.get_by_role("link", name="revoked-in-the-browser").click()
        screenshot(page, screenshots / "detail.png", full_page=True)
        page.get_by_role("link", name="Revoke this token").click()
        screenshot(page, screenshots / "revoke.png")
        page.get_by_role("button", name="Revoke token").click()
        page.get_by_text("Revoked: every service now refuses this token.").wait_for()
        assert page.locator(".chip-revoked").first.is_visible()

        def refused() -> bool:
            return not client.validate(created["token"]).valid

        wait_for(refused)
        assert client.validate(created["token"]).reason == "revoked"
    assert "revoke" in page.locator(".timeline").inner_text()


def test_rotating_from_the_detail_page_shows_the_successor_once(
    admin_page: Page, console: ServerProcess, screenshots: Path
) -> None:
    old = create(console, name="rotated-in-the-browser", ttl_days=30)
    page = admin_page
    page.goto(f"/console/tokens/{old['token_id']}")
    page.get_by_label("Grace period (seconds; 0 revokes the old token now)").fill("3600")
    page.get_by_label("Finish when idle").fill("900")
    page.get_by_role("button", name="Rotate").click()
    secret = page.get_by_label("New token for rotated-in-the-browser")
    new_token = secret.input_value()
    screenshot(page, screenshots / "rotated.png", full_page=True, mask=[secret])
    assert page.get_by_text("valid until").is_visible()
    assert new_token not in page.url
    with AuthClient(console.base_url) as client:
        fresh, old_answer = client.validate(new_token), client.validate(old["token"])
    assert fresh.valid
    assert old_answer.valid
    assert old_answer.replaced_by == fresh.token_id

    page.reload()  # sends the form again: rotated already, nothing shown, nothing minted
    assert new_token not in page.content()
    assert page.get_by_text("Not rotated: token").is_visible()
    assert page.get_by_text("already rotated").is_visible()
    # The old token's page names its successor, and the successor's its predecessor.
    page.get_by_role("link", name=str(fresh.token_id)).click()
    page.wait_for_url(f"**/console/tokens/{fresh.token_id}")
    assert page.get_by_role("link", name=old["token_id"]).is_visible()
    with console.client() as admin:
        named = admin.get("/auth/tokens", params={"name": "rotated-in-the-browser"}).json()
    assert len(named["items"]) == 2  # the reload minted no third token


def test_filtering_and_paging_through_500_tokens(admin_page: Page, console: ServerProcess) -> None:
    ids = insert_tokens(console, 500, name="paged", scope="paged.read")
    page = admin_page
    page.goto("/console/tokens")
    page.get_by_label("Name starts with").fill("paged-")
    page.get_by_label("Scope").fill("paged.read")
    page.get_by_role("button", name="Filter").click()
    names: list[str] = []
    while True:
        rows = page.locator("tbody tr td:nth-child(2) a")
        names += rows.all_inner_texts()
        more = page.get_by_role("link", name="Next page")
        if more.count() == 0:
            break
        assert rows.count() == 50
        more.click()
    assert len(ids) == 500
    assert names == [f"paged-{index:04d}" for index in reversed(range(500))]
    page.get_by_role("link", name="First page").click()
    assert page.locator("tbody tr td:nth-child(2) a").first.inner_text() == "paged-0499"
    # A filter the list does not match shows none of them.
    page.get_by_label("Scope").fill("paged.write")
    page.get_by_role("button", name="Filter").click()
    assert page.get_by_text("No tokens match.").is_visible()


def test_bulk_revoke_of_a_selection(
    admin_page: Page, console: ServerProcess, screenshots: Path
) -> None:
    chosen = [create(console, name=f"bulk-{n}")["token_id"] for n in range(3)]
    page = admin_page
    page.get_by_label("Name starts with").fill("bulk-")
    page.get_by_role("button", name="Filter").click()
    page.get_by_label("Select bulk-0").check()
    page.get_by_label("Select bulk-2").check()
    screenshot(page, screenshots / "tokens.png", full_page=True)
    page.get_by_role("button", name="Revoke selected").click()
    screenshot(page, screenshots / "bulk-revoke.png")
    page.get_by_role("button", name="Revoke 2 tokens").click()
    page.get_by_text("Revoked 2 of 2 tokens.").wait_for()
    with console.client() as admin:
        states = {i: admin.get(f"/auth/tokens/{i}").json()["status"] for i in chosen}
    assert states == {chosen[0]: "revoked", chosen[1]: "active", chosen[2]: "revoked"}


def _download(page: Page, link: str) -> str:
    with page.expect_download() as info:
        page.get_by_role("link", name=link).click()
    path = info.value.path()
    return Path(path).read_text(encoding="utf-8")


def test_the_audit_log_exports_as_csv_and_json_lines(
    admin_page: Page, console: ServerProcess, screenshots: Path
) -> None:
    made = {create(console, name=f"audited-{n}")["token_id"] for n in range(3)}
    page = admin_page
    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Action").fill("create")
    page.get_by_role("button", name="Filter").click()
    screenshot(page, screenshots / "audit.png", full_page=True)
    with console.client() as admin:
        expected = admin.get("/auth/audit", params={"action": "create", "limit": 500}).json()
    expected_ids = [entry["id"] for entry in expected["items"]]

    rows = list(csv.DictReader(io.StringIO(_download(page, "Export as CSV"))))
    assert [int(row["id"]) for row in rows] == expected_ids
    assert {row["action"] for row in rows} == {"create"}
    assert made <= {row["token_id"] for row in rows}
    assert all(isinstance(json.loads(row["details"]), dict) for row in rows)

    lines = _download(page, "Export as JSON Lines").splitlines()
    entries = [json.loads(line) for line in lines]
    assert entries == expected["items"]


def test_after_sign_out_the_back_button_shows_nothing(
    admin_page: Page, console: ServerProcess
) -> None:
    create(console, name="seen-before-sign-out")
    page = admin_page
    page.reload()
    assert page.get_by_text("seen-before-sign-out").is_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/sign-in")
    page.go_back()
    page.wait_for_url("**/console/sign-in**")
    assert "seen-before-sign-out" not in page.content()
    assert page.get_by_label("Admin token").is_visible()


def test_a_revoked_admins_open_session_ends_at_its_next_click(
    page: Page, console: ServerProcess
) -> None:
    second = create(console, name="second-admin", scopes=["admin"])
    sign_in(page, second["token"])
    with console.client() as admin:
        admin.post(f"/auth/tokens/{second['token_id']}/revoke").raise_for_status()
    page.get_by_role("link", name="Audit log").click()
    page.wait_for_url("**/console/sign-in?ended=1")
    assert page.get_by_text("Your session has ended. Sign in again.").is_visible()
    page.goto("/console/tokens")
    page.wait_for_url("**/console/sign-in**")


def _tab_to(page: Page, text: str, presses: int = 60) -> None:
    """Press Tab until the focused control's text (or value) is ``text``."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement;"
            " return (e.innerText || e.value || e.getAttribute('aria-label') || '').trim(); }"
        )
        if focused == text:
            return
    raise AssertionError(f"no control named {text!r} reached by Tab")


def test_create_and_revoke_with_the_keyboard_only(page: Page, console: ServerProcess) -> None:
    assert console.admin_token is not None
    page.goto("/console/sign-in")
    # The field has the focus (autofocus), which Chromium may give it only
    # after the load event: waited for, so that no keystroke goes elsewhere.
    expect(page.get_by_label("Admin token")).to_be_focused()
    page.keyboard.type(console.admin_token)
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/tokens")
    _tab_to(page, "Create a token")
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/tokens/new")
    _tab_to(page, "Sign out")
    page.keyboard.press("Tab")  # the first field: Name
    page.keyboard.type("typed-only")
    page.keyboard.press("Tab")
    page.keyboard.type("read")
    page.keyboard.press("Enter")  # submits the form
    page.get_by_role("button", name="Copy token").wait_for()
    _tab_to(page, "View the token's details")
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/tokens/tok_*")
    _tab_to(page, "Revoke this token")
    page.keyboard.press("Enter")
    page.wait_for_url("**/revoke")
    _tab_to(page, "Revoke token")
    page.keyboard.press("Enter")
    page.get_by_text("Revoked: every service now refuses this token.").wait_for()
    with console.client() as admin:
        named = admin.get("/auth/tokens", params={"name": "typed-only", "status": "all"}).json()
    assert [item["status"] for item in named["items"]] == ["revoked"]


def test_the_health_screen_shows_what_metrics_know(
    admin_page: Page, console: ServerProcess, screenshots: Path
) -> None:
    revoked = create(console, name="revoked-for-the-lag")
    with console.client() as admin:
        assert admin.post(f"/auth/tokens/{revoked['token_id']}/revoke").status_code == 200
    page = admin_page
    page.get_by_role("link", name="Health").click()
    lag = page.get_by_role("row", name=re.compile("Revocation lag")).inner_text()
    # At least the revocation above, timed from its commit to the last cache.
    assert re.search(r"mean \d+\.\d ms over [1-9]\d* changes; 95 % within \d", lag), lag
    assert page.get_by_role("row", name="Database healthy").is_visible()
    assert page.get_by_role("row", name="Command processor running").is_visible()
    assert page.get_by_text("Event stream subscribers (this process)").is_visible()
    screenshot(page, screenshots / "health.png", full_page=True)


def test_expiring_soon_lists_the_still_used_tokens_expiring_within_two_weeks(
    admin_page: Page, console: ServerProcess
) -> None:
    soon = create(console, name="expiring-soon", ttl_days=3)
    create(console, name="expiring-unused", ttl_days=3)
    later = create(console, name="expiring-later", ttl_days=60)
    with console.client(token=None) as service:
        for used in (soon, later):
            answer = service.post("/auth/validate", json={"token": used["token"]}).json()
            assert answer["valid"]
    with console.client() as admin:

        def used(token_id: str) -> bool:
            return admin.get(f"/auth/tokens/{token_id}").json()["last_used_at"] is not None

        wait_for(lambda: used(soon["token_id"]) and used(later["token_id"]))
    page = admin_page
    page.get_by_role("link", name="Expiring soon").click()
    assert page.get_by_label("Expiring within (days)").input_value() == "14"
    assert page.get_by_label("Used within (days)").input_value() == "7"
    assert page.get_by_role("link", name="expiring-soon", exact=True).is_visible()
    # Nobody uses it: it needs neither an extension nor a rotation.
    assert page.get_by_role("link", name="expiring-unused", exact=True).count() == 0
    assert page.get_by_role("link", name="expiring-later", exact=True).count() == 0
    # From the list, straight to the token's extend form, and extended.
    page.get_by_role("link", name="Extend expiring-soon").click()
    page.wait_for_url(f"**/console/tokens/{soon['token_id']}#extend")
    page.get_by_label("Extend by (days)").fill("10")
    page.get_by_role("button", name="Extend").click()
    page.get_by_text("Extended").first.wait_for()
    with console.client() as admin:
        record = admin.get(f"/auth/tokens/{soon['token_id']}").json()
    assert record["expires_at"] > soon["expires_at"]
    # And to its rotate form.
    page.get_by_role("link", name="Expiring soon").click()
    page.get_by_role("link", name="Rotate expiring-soon").click()
    page.wait_for_url(f"**/console/tokens/{soon['token_id']}#rotate")
    assert page.get_by_role("button", name="Rotate").is_visible()


def test_a_delegated_admin_sees_and_makes_only_its_owners_tokens(
    page: Page, console: ServerProcess
) -> None:
    delegate = create(
        console, name="payments-admin", scopes=["tokens:manage", "read"], owner="payments",
        ttl_days=30,
    )  # fmt: skip
    ours = create(console, name="payments-api", owner="payments", ttl_days=7)
    theirs = create(console, name="billing-api", owner="billing", ttl_days=7)
    sign_in(page, delegate["token"])
    assert page.get_by_role("link", name="payments-api").is_visible()
    assert page.get_by_role("link", name="billing-api").count() == 0

    page.get_by_role("link", name="Create a token").click()
    page.get_by_label("Name").fill("payments-worker")
    page.get_by_label("Scopes").fill("read")
    page.get_by_label("Expires in (days)").fill("7")
    page.get_by_role("button", name="Create token").click()
    made = page.get_by_label("New token for payments-worker").input_value()
    with AuthClient(console.base_url) as client:
        assert client.validate(made).owner == "payments"

    # Another owner's token is not found, exactly as an id of no token.
    foreign = page.goto(f"/console/tokens/{theirs['token_id']}")
    unknown = page.goto("/console/tokens/tok_0000000000000000")
    assert foreign is not None
    assert unknown is not None
    assert foreign.status == unknown.status == 404
    mine = page.goto(f"/console/tokens/{ours['token_id']}")
    assert mine is not None
    assert mine.status == 200
    assert page.get_by_text("payments", exact=True).first.is_visible()
