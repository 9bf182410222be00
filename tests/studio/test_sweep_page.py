"""A sweep's page in headless Chromium: trials ranked, the best trial, the charts, and the
trials stopped early with the policy's numbers; a multi-objective sweep's Pareto front."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from studio_kit import LiveServer, Page

from cumulo import (
    BanditPolicy,
    Experiment,
    GridParameterSampling,
    HyperDriveConfig,
    PrimaryMetricGoal,
    ScriptRunConfig,
    Workspace,
    choice,
)
from cumulo.core.settings import Settings
from cumulo.services.context import close_all

pytestmark = pytest.mark.slow

# x below 0.3 would report for minutes; the others report ten steps at once.
TRAIN = """\
import argparse, time
from cumulo import Run
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
a = p.parse_args()
run = Run.get_context()
steps, pause = (1000, 0.2) if a.x < 0.3 else (10, 0.0)
for step in range(steps):
    run.log("accuracy", a.x)
    run.log("latency_ms", a.x * 100)
    run.flush()
    time.sleep(pause)
"""


@dataclass
class Sweeps:
    workspace: str
    single: str
    multi: str


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sweeps, Path]]:
    home = tmp_path_factory.mktemp("sweep-home")
    src = home / "src"
    src.mkdir()
    (src / "train.py").write_text(TRAIN)
    ws = Workspace.create("tuning", home=home)
    single = Experiment(ws, "tune").submit(
        HyperDriveConfig(
            run_config=ScriptRunConfig(src, "train.py"),
            hyperparameter_sampling=GridParameterSampling({"x": choice(0.9, 0.7, 0.1)}),
            policy=BanditPolicy(slack_factor=0.5),
            primary_metric_name="accuracy",
            max_total_runs=3,
            max_concurrent_runs=3,
        )
    )
    multi = Experiment(ws, "tradeoff").submit(
        HyperDriveConfig(
            run_config=ScriptRunConfig(src, "train.py"),
            hyperparameter_sampling=GridParameterSampling({"x": choice(0.4, 0.8)}),
            primary_metrics=[
                ("accuracy", PrimaryMetricGoal.MAXIMIZE),
                ("latency_ms", PrimaryMetricGoal.MINIMIZE),
            ],
            max_total_runs=2,
        )
    )
    for sweep in (single, multi):
        assert sweep.wait_for_completion(show_output=False, timeout=240)["status"] == "Completed"
    close_all(stop_nodes=True)
    yield Sweeps(ws.name, single.id, multi.id), home


@pytest.fixture(scope="module")
def studio(sweeps: tuple[Sweeps, Path]) -> Iterator[LiveServer]:
    with LiveServer(Settings.load(home=sweeps[1])) as server:
        yield server


def test_a_sweep_page_ranks_its_trials_and_says_why_one_stopped(
    tab: Page, sweeps: tuple[Sweeps, Path]
) -> None:
    made = sweeps[0]
    page = tab.open(f"/ws/{made.workspace}/runs/{made.single}")
    page.locator("#run-tabs a", has_text="Sweep").click()
    page.wait_for_selector("#sweep-chart[data-drawn]")
    assert page.get_attribute("#sweep-chart", "data-drawn") == "3"
    assert page.locator("#sweep-chart canvas").count() == 1
    rows = page.locator("#sweep-trials tbody tr")
    assert rows.count() == 3
    # ranked by accuracy, best first: the stopped trial's last value ranks it last
    values = [
        float(v) for v in page.locator("#sweep-trials tbody td:nth-child(5)").all_inner_texts()
    ]
    assert values == [0.9, 0.7, 0.1]
    assert "trial" in page.inner_text("#sweep-best") and "accuracy 0.9" in page.inner_text(
        "#sweep-best"
    )
    stopped = page.locator("#sweep-stopped tbody tr")
    assert stopped.count() == 1
    why = stopped.inner_text()
    assert "BanditPolicy" in why and "value 0.1" in why and "best 0.9" in why and "limit 0.6" in why
    page.wait_for_selector("#parallel[data-drawn]")
    assert page.get_attribute("#parallel", "data-drawn") == "3"
    tab.shot("sweep-page", full_page=True)


def test_a_multi_objective_sweep_page_shows_its_pareto_front(
    tab: Page, sweeps: tuple[Sweeps, Path]
) -> None:
    made = sweeps[0]
    page = tab.open(f"/ws/{made.workspace}/runs/{made.multi}/sweep")
    page.wait_for_selector("#sweep-chart[data-drawn]")
    assert page.get_attribute("#sweep-chart", "data-drawn") == "2"
    front = page.locator("#sweep-front li")
    assert front.count() == 2  # more accurate is slower: neither beats the other
    assert page.locator("#sweep-trials thead th", has_text="latency_ms").count() == 1
    assert page.locator("#sweep-trials tbody td", has_text="★").count() == 2
    tab.shot("sweep-pareto", full_page=True)
