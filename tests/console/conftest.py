"""One server and one Chromium per test module; a fresh browser context per test."""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest

from amplify_auth_client import generate_token, hash_token
from tests.support.browser import chromium
from tests.support.server import Backend, ServerProcess, running_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

#: Where the screenshots of docs/console.md live; the tests rewrite them when
#: UPDATE_SCREENSHOTS=1 (else they go to a temporary directory, still taken).
SCREENSHOTS = Path(__file__).parents[2] / "docs" / "img" / "console"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server on the embedded backend, its console on."""
    backend = Backend("embedded", tmp_path_factory.mktemp("console"))
    # Uses written down within a fifth of a second: "last used" and "still
    # used" show what a test just did, polled, never slept for.
    with running_server(backend, env={"USAGE_FLUSH_SECONDS": "0.2"}) as process:
        yield process


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as instance:
        yield instance


@pytest.fixture
def page(browser: Browser, console: ServerProcess) -> Iterator[Page]:
    context = browser.new_context(base_url=console.base_url)
    try:
        context.set_default_timeout(10_000)
        yield context.new_page()
    finally:
        context.close()


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF.search(html)
    assert found is not None
    return found.group(1)


def browserless(server: ServerProcess) -> httpx.Client:
    """A plain HTTP client with a cookie jar: what a forger's script can do."""
    return httpx.Client(base_url=server.base_url, timeout=30.0)


def create(server: ServerProcess, **body: Any) -> dict[str, Any]:
    """A token created through the API (the 201 body, raw token included)."""
    body.setdefault("scopes", ["read"])
    with server.client() as admin:
        response = admin.post("/auth/tokens", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def sign_in(page: Page, token: str) -> None:
    """Sign in through the form, as a person would, and land on the tokens list."""
    page.goto("/console/sign-in")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/tokens")


@pytest.fixture
def admin_page(page: Page, console: ServerProcess) -> Page:
    assert console.admin_token is not None
    sign_in(page, console.admin_token)
    return page


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


def insert_tokens(server: ServerProcess, count: int, *, name: str, scope: str) -> list[str]:
    """``count`` tokens written straight into the server's database, in one statement;
    returns their ids, oldest first."""
    from amplify_auth_server.database import create_engine
    from amplify_auth_server.models import TokenRecord, utcnow
    from amplify_auth_server.store import TokenStore

    # A millisecond apart, so that newest first is exactly the reverse of this order
    # (the clock may give two records of a fast loop the same time).
    start = utcnow() - timedelta(milliseconds=count + 1)
    records = [
        TokenRecord.new(
            token_hash=hash_token(generate_token()),
            name=f"{name}-{index:04d}",
            scopes=(scope,),
            created_by="test",
            now=start + timedelta(milliseconds=index),
        )
        for index in range(count)
    ]

    async def insert() -> None:
        engine = create_engine(f"sqlite:///{server.cwd / 'amplify_auth.db'}")
        try:
            store = TokenStore(engine)
            async with store.transaction() as connection:
                await store.insert_many(connection, records)
        finally:
            await engine.dispose()

    in_thread(lambda: asyncio.run(insert()))
    return [record.id for record in records]


T = TypeVar("T")


def in_thread(work: Callable[[], T]) -> T:
    """``work()`` in a thread of its own: Playwright's sync API holds this thread's
    event loop, so ``asyncio.run`` (a direct database write) cannot run here."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(work())
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    if errors:
        raise errors[0]
    return results[0]
