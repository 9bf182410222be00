"""Charts in headless Chromium: readable ticks and tooltips, and the experiment's Charts view."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from studio_kit import LiveServer, Page

from cumulo.core.settings import Settings

pytestmark = pytest.mark.slow


@dataclass
class Sweep:
    server: LiveServer
    workspace: str
    experiment_id: int
    runs: dict[str, str] = field(default_factory=dict)  # display name -> run id


def _seed(home: Path) -> tuple[str, int, dict[str, str]]:
    from cumulo import Workspace
    from cumulo.sdk.experiment import Experiment

    ws = Workspace.create("sweeps", home=home)
    exp = Experiment(ws, "lr-sweep")
    runs: dict[str, str] = {}
    for i in range(12):
        optimizer = ["adam", "sgd", "rmsprop"][i % 3]
        run = exp.start_logging(display_name=f"run-{i:02d}")
        run.log_params({"optimizer": optimizer, "seed": i})
        points = []
        for step in range(50):
            points.append(("lr", 3e-4 * (1 - step / 100), step))
            points.append(("loss", (1 + i % 3) * math.exp(-step / 20) + i / 100, step))
            points.append(("grad_norm", 10 ** (-5 + 3 * step / 49), step))
        ws._transport.log_batch(ws.name, run.id, metrics=[(k, v, s, None) for k, v, s in points])
        run.log("accuracy", 0.5 + i / 40)
        run.complete()
        runs[run.display_name] = run.id
    ws.flush()
    return ws.name, exp.id, runs


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    home = tmp_path_factory.mktemp("charts") / "home"
    workspace, experiment_id, runs = _seed(home)
    with LiveServer(Settings.load(home=home, environ={})) as server:
        yield Sweep(server, workspace, experiment_id, runs)


@pytest.fixture
def tab(browser: Any, sweep: Sweep) -> Iterator[Page]:
    page = Page(browser, sweep.server.url)
    yield page
    page.context.close()
    assert page.errors == [], f"JavaScript errors on the page: {page.errors}"


def _ticks(page: Any, selector: str, axis: int = 1) -> list[str]:
    page.wait_for_selector(f"{selector}[data-drawn]")
    return list(
        page.evaluate(f"document.querySelector('{selector} .plot')._uplot.axes[{axis}]._values")
    )


def test_small_values_keep_their_digits_on_ticks_and_in_the_legend(tab: Page, sweep: Sweep) -> None:
    run_id = sweep.runs["run-00"]
    page = tab.open(f"/ws/{sweep.workspace}/runs/{run_id}/metrics")
    lr = _ticks(page, ".chart[data-key=lr]")
    assert lr and "0" not in lr, lr  # 3e-4 is not zero
    assert len(set(lr)) == len(lr)  # neighbouring ticks are told apart
    assert all("e-4" in t or "e-5" in t for t in lr), lr
    grad = _ticks(page, ".chart[data-key=grad_norm]")
    assert len(set(grad)) == len(grad), grad
    page.check("#chart-log")
    page.wait_for_function(
        "document.querySelector('.chart[data-key=grad_norm] .plot')._uplot.scales.y.distr === 3"
    )
    logged = _ticks(page, ".chart[data-key=grad_norm]")
    assert "1e-5" in logged and "0" not in logged, logged


def test_compare_link_is_no_link_until_a_run_is_picked(tab: Page, sweep: Sweep) -> None:
    page = tab.open(f"/ws/{sweep.workspace}/experiments/{sweep.experiment_id}")
    link = page.locator("#compare-link")
    assert link.inner_text() == "Compare (0)" and link.get_attribute("href") is None
    page.locator("#runs tbody tr", has_text="run-03").locator("input.pick").check()
    assert link.get_attribute("href", timeout=2000).endswith(f"runs={sweep.runs['run-03']}")
    page.locator("#runs tbody tr", has_text="run-03").locator("input.pick").uncheck()
    assert link.get_attribute("href") is None
