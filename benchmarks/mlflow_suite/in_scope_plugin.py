"""A pytest plugin that keeps only the in-scope tests (``run.py --in-scope``)."""

from __future__ import annotations

from typing import Any

from run import IN_SCOPE, area_of


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    kept, dropped = [], []
    for item in items:
        (kept if area_of(item.name) == IN_SCOPE else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
