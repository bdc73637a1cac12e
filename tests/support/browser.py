"""Fixtures for real headless Chromium driven by Playwright against a live console.

Playwright's own browser download cannot work offline, so the tests launch the system's
Chromium (`CHROMIUM_PATH`, set by `make test`). A missing browser fails the tests loudly.
"""

import os
import shutil
from collections.abc import Iterator

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between
# browser steps are ordinary blocking calls, which is safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if not path or not os.path.exists(path):
        pytest.fail(
            "Chromium was not found: install it (Debian: apt-get install -y chromium) or set"
            " CHROMIUM_PATH. `make test` checks this before running."
        )
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser, live_server):
    """Pages in fresh browser contexts (separate cookie jars: separate people)."""
    contexts = []

    def open_page():
        context = browser.new_context(base_url=live_server.url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()
