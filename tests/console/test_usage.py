"""The console shows when each token was last used, filters the unused, and draws a
token's uses per day on its detail page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from amplify_auth_server.models import utcnow
from tests.console.conftest import create
from tests.support.browser import screenshot
from tests.support.server import Backend, ServerProcess, running_server
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The console's server, with usage written five times a second."""
    backend = Backend("embedded", tmp_path_factory.mktemp("console-usage"))
    with running_server(backend, env={"USAGE_FLUSH_SECONDS": "0.2"}) as process:
        yield process


def _used(console: ServerProcess, token: str, times: int) -> None:
    with console.client(token=None) as service:
        for _ in range(times):
            response = service.post("/auth/validate", json={"token": token})
            assert response.json()["valid"], response.text


def _uses(console: ServerProcess, token_id: str) -> int:
    with console.client() as admin:
        usage = admin.get(f"/auth/tokens/{token_id}").json()["usage"]
    return sum(day["count"] for day in usage)


def _last_used(console: ServerProcess, token_id: str) -> object:
    with console.client() as admin:
        return admin.get(f"/auth/tokens/{token_id}").json()["last_used_at"]


def test_the_list_shows_last_use_and_filters_the_unused(
    admin_page: Page, console: ServerProcess, screenshots: Path
) -> None:
    used = create(console, name="usage-busy")
    create(console, name="usage-idle")
    _used(console, used["token"], 3)
    wait_for(lambda: _last_used(console, used["token_id"]) is not None)
    page = admin_page
    page.goto("/console/tokens?name=usage-")
    assert page.get_by_role("columnheader", name="Last used").is_visible()
    idle_row = page.get_by_role("row").filter(has_text="usage-idle")
    busy_row = page.get_by_role("row").filter(has_text="usage-busy")
    # Created, then (never expiring) the last use: a time, or "never".
    assert busy_row.inner_text().count(" UTC") == 2
    assert idle_row.inner_text().count(" UTC") == 1
    assert idle_row.inner_text().rstrip().endswith("never")
    page.get_by_label("Unused for (days)").fill("1")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**unused_for_days=1**")
    names = page.get_by_role("row").all_inner_texts()
    assert any("usage-idle" in row for row in names)
    assert not any("usage-busy" in row for row in names)
    screenshot(page, screenshots / "unused.png", full_page=True)


def test_the_detail_page_shows_uses_per_day(admin_page: Page, console: ServerProcess) -> None:
    made = create(console, name="usage-detail")
    page = admin_page
    page.goto(f"/console/tokens/{made['token_id']}")
    assert page.get_by_text("No uses in the last 30 days.").is_visible()
    _used(console, made["token"], 4)
    # All four written: a flush may fall between them (last_used_at shows the
    # first flush, the count only the uses it held).
    wait_for(lambda: _uses(console, made["token_id"]) == 4)
    page.reload()
    table = page.get_by_role("table").filter(has_text="Uses")
    assert table.get_by_role("cell", name="4", exact=True).is_visible()
    chart = page.get_by_role("img", name="Uses per day")
    assert chart.is_visible()
    # A bar a day for the last 30, today's last: only today's has uses.
    bars = chart.locator("rect")
    assert bars.count() == 30
    assert chart.locator("rect.none").count() == 29
    assert bars.last.locator("title").text_content() == f"{utcnow().date().isoformat()}: 4"
