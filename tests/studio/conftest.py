"""Fixtures for the studio tests: a seeded home, a live server, headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from studio_kit import CHROMIUM, CHROMIUM_ARGS, LiveServer, Page, Seeded, seed

from cumulo.core.settings import Settings


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return seed(tmp_path_factory.mktemp("studio-home"))


@pytest.fixture(scope="module")
def studio(seeded: Seeded) -> Iterator[LiveServer]:
    with LiveServer(Settings.load(home=seeded.home)) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: install Debian's chromium package (make test does).")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def tab(browser: Any, studio: LiveServer) -> Iterator[Page]:
    page = Page(browser, studio.url)
    yield page
    page.context.close()
    assert page.errors == [], f"JavaScript errors on the page: {page.errors}"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """The chart service is read in-process: the embedded backends only."""
    return str(request.param)
