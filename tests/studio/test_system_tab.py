"""The run page's System tab in headless Chromium: the machine beside the run's metrics."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from studio_kit import Page, Seeded

from cumulo.core import system_metrics as names

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """One run with its loss and a GPU, CPU and memory sampled over the same second."""
    from cumulo import Workspace
    from cumulo.sdk.workspace import Experiment

    home: Path = tmp_path_factory.mktemp("studio-system")
    ws = Workspace.create("lab", home=home)
    exp = Experiment(ws, "train")
    run = exp.start_logging(display_name="cnn")
    start = run.info.started_at or run.info.created_at
    points = []
    for i in range(20):
        at = start + 40 * i
        points.append(("loss", 1.0 / (1 + i), i, at))
        points.append((names.gpu(0, "utilization_percentage"), 20.0 if i < 10 else 90.0, i, at))
        points.append((names.PROCESS_CPU, 100.0, i, at))
        points.append((names.PROCESS_RSS, 500.0 + 10 * i, i, at))
    ws.transport.tracking.log_batch(ws.name, run.id, metrics=points)
    time.sleep(1.0)  # the run ends after its last point
    run.complete()
    return Seeded(home=home, workspace=ws.name, experiment_id=exp.id, runs={"cnn": run.id})


def test_the_system_tab_charts_the_machine_on_the_runs_time_axis(tab: Page, seeded: Seeded) -> None:
    run_id = seeded.runs["cnn"]
    page = tab.open(f"/ws/{seeded.workspace}/runs/{run_id}/system")
    assert page.locator("#run-tabs a.on").inner_text() == "System 3"  # its three series
    counts = page.locator("#run-tabs a:has(.count)").evaluate_all(
        "els => els.map(e => [e.dataset.tab, e.querySelector('.count').textContent])"
    )
    assert dict(counts) == {"metrics": "1", "system": "3"}  # each tab counts what it shows
    sections = page.locator(".charts-section").all_inner_texts()
    assert sections == ["GPUs", "CPU", "Memory", "The run's metrics"]
    gpu = f".chart[data-key='{names.gpu(0, 'utilization_percentage')}']"
    for selector in (gpu, ".chart[data-key=loss]", f".chart[data-key='{names.PROCESS_RSS}']"):
        page.locator(selector).scroll_into_view_if_needed()  # charts load when seen
        page.wait_for_selector(f"{selector}[data-drawn]")
    # Every chart spans the run's time: a loss plateau lines up with the GPU's samples.
    spans = page.evaluate(
        "Array.from(document.querySelectorAll('.chart .plot')).filter(p => p._uplot)"
        ".map(p => [p._uplot.scales.x.min, p._uplot.scales.x.max])"
    )
    assert len(spans) == 4 and all(span == spans[0] for span in spans), spans
    assert page.locator(".chart[data-key=loss] .chart-info").inner_text() == "20 points"
    tab.shot("12-run-system")

    # The Metrics tab keeps to the run's own metrics.
    page = tab.open(f"/ws/{seeded.workspace}/runs/{run_id}/metrics")
    page.wait_for_selector(".chart[data-key=loss][data-drawn]")
    assert page.locator(".chart[data-key^='system/']").count() == 0
