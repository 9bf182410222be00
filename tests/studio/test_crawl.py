"""Every link on every studio page leads somewhere, and no page logs a JavaScript error.

Starting at the home page, pages are opened in Chromium breadth first (so every
kind of page is reached before the many variants of one: sort orders, pages of
a list), up to ``MAX_PAGES``; every same-origin link found on them is fetched.
"""

from __future__ import annotations

from collections import deque
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import httpx
import pytest
from studio_kit import LiveServer, Page, Seeded

pytestmark = pytest.mark.slow

MAX_PAGES = 90


def _kind(url: str) -> str:
    """A page's kind: its path with ids and numbers left out, and its query's names."""
    parts = urlsplit(url)
    words = [
        "*" if p.isdigit() or len(p) >= 24 or p.startswith("trial-") else p
        for p in parts.path.split("/")
    ]
    names = sorted({q.split("=")[0] for q in parts.query.split("&") if q})
    return "/".join(words) + "?" + ",".join(names)


def test_no_broken_link_and_no_console_error_on_any_page(
    tab: Page, studio: LiveServer, seeded: Seeded
) -> None:
    origin = studio.url
    # Compare is reached by picking runs (a form, not a link): it starts the crawl too, with
    # runs that have images, tables and child runs.
    picked = [seeded.runs[name] for name in ("best", "trial-00", "trial-01", "sweep")]
    compare = f"{origin}/ws/{seeded.workspace}/compare?" + "&".join(f"runs={r}" for r in picked)
    queue: deque[str] = deque([origin + "/", compare])
    seen_links: set[str] = {origin + "/", compare}
    opened: list[str] = []
    kinds_opened: dict[str, int] = {}
    broken: list[tuple[str, int, str]] = []
    with httpx.Client() as client:
        while queue and len(opened) < MAX_PAGES:
            url = queue.popleft()
            kind = _kind(url)
            if kinds_opened.get(kind, 0) >= 3:  # three of a kind show what the kind does
                continue
            head = client.get(url)
            if head.status_code >= 400:
                broken.append((url, head.status_code, "(opened)"))
                continue
            if not head.headers.get("content-type", "").startswith("text/html"):
                continue
            page = tab.open(url.removeprefix(origin))
            opened.append(url)
            kinds_opened[kind] = kinds_opened.get(kind, 0) + 1
            hrefs: list[Any] = page.eval_on_selector_all(
                "a[href]", "els => els.map(e => e.getAttribute('href'))"
            )
            for href in hrefs:
                if not href or href.startswith(("#", "javascript:", "mailto:")):
                    continue
                target = urldefrag(urljoin(url, href)).url
                if not target.startswith(origin) or target in seen_links:
                    continue
                seen_links.add(target)
                answer = client.get(target)
                if answer.status_code >= 400:
                    broken.append((target, answer.status_code, url))
                elif answer.headers.get("content-type", "").startswith("text/html"):
                    queue.append(target)
    assert broken == [], f"{len(broken)} broken links: {broken[:10]}"
    assert tab.errors == [], f"console errors: {tab.errors[:10]}"
    # The crawl reached every part of the studio.
    reached = " ".join(opened)
    for part in (
        "/experiments",
        "/charts",
        "/compare",
        "/runs/",
        "/metrics",
        "/images",
        "/logs",
        "/code",
        "/children",
        "/compute",
        "/models",
        "/pipelines",
    ):
        assert part in reached, part
    assert len(seen_links) > 100
