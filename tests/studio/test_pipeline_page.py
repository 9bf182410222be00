"""A pipeline run's page in headless Chromium: the graph with each step's state, a click to a
step's run, the timeline, and statuses that change while the page stays open."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from studio_kit import LiveServer, Page

from cumulo import Experiment, Pipeline, PipelineData, PythonScriptStep, Workspace
from cumulo.core.settings import Settings
from cumulo.server.studio.pipelines import layout
from cumulo.services.context import close_all

STEP = """\
import argparse, pathlib, sys, time
p = argparse.ArgumentParser()
p.add_argument("--inp", action="append", default=[]); p.add_argument("--out")
p.add_argument("--fail", action="store_true"); p.add_argument("--sleep", type=float, default=0)
p.add_argument("--tag")
a = p.parse_args()
time.sleep(a.sleep)
if a.fail:
    sys.exit("this step fails")
if a.out:
    pathlib.Path(a.out, "x.txt").write_text("x")
"""


def _diamond(ws: Workspace, src: Path, fail: bool, sleep: float = 0) -> Pipeline:
    a, b, c = PipelineData("a"), PipelineData("b"), PipelineData("c")
    tag = uuid.uuid4().hex
    return Pipeline(
        ws,
        [
            PythonScriptStep("A", "step.py", src, ["--out", a, "--sleep", sleep, "--tag", tag],
                             outputs=[a]),
            PythonScriptStep("B", "step.py", src, ["--inp", a, "--out", b, *(["--fail"] * fail)],
                             outputs=[b]),
            PythonScriptStep("C", "step.py", src, ["--inp", a, "--out", c], outputs=[c]),
            PythonScriptStep("D", "step.py", src, ["--inp", b, "--inp", c]),
        ],
    )  # fmt: skip


def test_the_graph_puts_each_step_after_what_it_waits_for() -> None:
    steps = [
        {"name": n, "state": "waiting", "upstream": ups}
        for n, ups in [("A", []), ("B", ["A"]), ("C", ["A"]), ("D", ["B", "C"])]
    ]
    got = layout(steps)
    x = {b["name"]: b["x"] for b in got["boxes"]}
    y = {b["name"]: b["y"] for b in got["boxes"]}
    assert x["A"] < x["B"] == x["C"] < x["D"]
    assert y["B"] != y["C"]
    assert len(got["edges"]) == 4


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str, Path]]:
    home = tmp_path_factory.mktemp("pipeline-home")
    src = home / "src"
    src.mkdir()
    (src / "step.py").write_text(STEP)
    ws = Workspace.create("flows", home=home)
    run = Experiment(ws, "dag").submit(_diamond(ws, src, fail=True), continue_on_step_failure=True)
    assert run.wait_for_completion(show_output=False, timeout=240)["status"] == "Failed"
    close_all(stop_nodes=True)
    yield home, ws.name, run.id, src


@pytest.fixture(scope="module")
def studio(made: tuple[Path, str, str, Path]) -> Iterator[LiveServer]:
    with LiveServer(Settings.load(home=made[0])) as server:
        yield server


@pytest.mark.slow
def test_a_pipeline_page_draws_its_steps_and_links_to_them(
    tab: Page, made: tuple[Path, str, str, Path]
) -> None:
    _home, ws, run_id, _src = made
    page = tab.open(f"/ws/{ws}/runs/{run_id}")
    page.locator("#run-tabs a", has_text="Pipeline").click()
    page.wait_for_selector("#pipeline-graph svg.dag")
    states = {
        g.get_attribute("data-step"): g.get_attribute("data-state")
        for g in page.locator("g.dag-step").all()
    }
    assert states == {"A": "completed", "B": "failed", "C": "completed", "D": "canceled"}
    assert page.locator("path.dag-edge").count() == 4
    assert page.locator("svg.gantt rect.gantt-bar").count() == 4
    why = page.inner_text("#pipeline-steps tr[data-step=D]")
    assert "upstream step B failed" in why
    tab.shot("pipeline-page", full_page=True)
    page.locator("g.dag-step[data-step=C] a").click()
    page.wait_for_selector("body[data-ready=true]")
    assert "/runs/" in page.url and run_id not in page.url
    assert tab.errors == []


@pytest.mark.slow
def test_the_graph_follows_a_running_pipeline(
    tab: Page, studio: LiveServer, made: tuple[Path, str, str, Path]
) -> None:
    _home, ws_name, _run_id, src = made
    remote = Workspace.connect(studio.url, ws_name)
    run = Experiment(remote, "live").submit(_diamond(remote, src, fail=False, sleep=3))
    page = tab.open(f"/ws/{ws_name}/runs/{run.id}/pipeline")
    first = page.get_attribute("g.dag-step[data-step=D]", "data-state")
    assert first == "waiting"
    page.wait_for_selector("g.dag-step[data-step=D][data-state=completed]", timeout=120_000)
    assert page.get_attribute("#pipeline-graph", "data-status") == "Completed"
    assert tab.errors == []
