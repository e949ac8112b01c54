"""A real browser for the console's tests: Playwright driving the system Chromium.

Playwright's own browser download cannot work here, so it is pointed at
Debian's ``chromium`` (installed by ``scripts/ensure-chromium.sh``, which
``make test`` runs). Without it the tests skip, or fail under ``CI=true``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.services import unavailable

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    """One headless Chromium, closed on exit."""
    if not CHROMIUM.exists():
        unavailable(
            f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


#: What headless Chromium says when a capture finds no frame to take yet.
_NO_FRAME = "Unable to capture screenshot"
#: Resolves once the page has drawn its next frame.
_NEXT_FRAME = "() => new Promise(requestAnimationFrame)"


def screenshot(page: Page, path: Path, **options: Any) -> None:
    """A screenshot of ``page`` for the docs, as ``page.screenshot`` takes it.

    Headless Chromium now and then fails a capture ("Unable to capture
    screenshot": its compositor had no frame ready; seen twice in a few
    dozen runs, both times on a page the test had just asserted on). The
    page is unchanged, so once the next frame is drawn the second try is
    the same picture; any other failure is the test's.
    """
    from playwright.sync_api import Error

    try:
        page.evaluate(_NEXT_FRAME)
        page.screenshot(path=path, **options)
    except Error as exc:
        if _NO_FRAME not in str(exc):
            raise
        page.evaluate(_NEXT_FRAME)
        page.screenshot(path=path, **options)
