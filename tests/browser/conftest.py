"""Browser tests: one headless Debian Chromium per module, a fresh context per test.

Playwright's `expect` waits on a condition with a 5 s default, which a cold Panel process on a
busy 2-core machine can exceed; it gets the same ceiling as the pages' default timeout (a
ceiling, not a target: passing tests return as soon as the page agrees)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from lyra.testing.serving import collect_console_errors, launch_chromium

expect.set_options(timeout=45_000)

#: A ceiling for a cold Panel on a busy machine, not a target.
PAGE_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, shared by a module's tests."""
    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


def new_page(browser: Any, *, width: int = 1400, height: int = 900) -> Any:
    """A page in a new context (no cookies shared with other tests) that records its console
    errors in ``page.console_errors``."""
    context = browser.new_context(viewport={"width": width, "height": height})
    pg = context.new_page()
    pg.set_default_timeout(PAGE_TIMEOUT_MS)
    pg.console_errors = collect_console_errors(pg)
    return pg


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page per test, closed with its context."""
    pg = new_page(browser)
    yield pg
    pg.context.close()
