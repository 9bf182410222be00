"""A submitted job in the studio: its target's page, live job logs, code snapshot, environment."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from studio_kit import LiveServer, Page

from cumulo.core.settings import Settings

pytestmark = pytest.mark.slow

SCRIPT = """\
import os, sys, time
print("first line", os.environ.get("GREETING"), flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
print("second line", flush=True)
"""


@pytest.fixture
def job_tab(browser: Any, tmp_path: Path) -> Iterator[tuple[Page, Any, Path]]:
    from cumulo import ComputeTarget, Environment, Experiment, LocalPool, ScriptRunConfig, Workspace
    from cumulo.services.context import open_services

    home = tmp_path / "home"
    ws = Workspace.create("jobs", home=home)
    ComputeTarget.create(ws, "cpu-pool", LocalPool(max_nodes=1))
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(SCRIPT)
    (src / "README.md").write_text("# the training code\n")
    gate = tmp_path / "gate"
    env = Environment("greet", environment_variables={"GREETING": "hello"})
    config = ScriptRunConfig(
        src, "train.py", arguments=[str(gate)], compute_target="cpu-pool", environment=env
    )
    run = Experiment(ws, "jobs").submit(config)
    try:
        with LiveServer(Settings.load(home=home)) as server:
            page = Page(browser, server.url)
            yield page, run, gate
            page.context.close()
            assert page.errors == [], f"JavaScript errors on the page: {page.errors}"
    finally:
        gate.touch()
        open_services(Settings.load(home=home)).stop_workers(stop_nodes=True)


def test_job_logs_tail_live_and_pages_show_target_code_and_environment(
    job_tab: tuple[Page, Any, Path],
) -> None:
    tab, run, gate = job_tab
    page = tab.open(f"/ws/jobs/runs/{run.id}/logs")
    page.wait_for_function(
        "document.querySelector('#log') && document.querySelector('#log').textContent"
        ".includes('first line hello')",
        timeout=90_000,
    )
    page.wait_for_selector("#run-header .status:has-text('Running')")

    compute = tab.open("/ws/jobs/compute")
    card = compute.locator("section.target[data-target=cpu-pool]")
    assert card.locator(".chip").inner_text() == "pool"
    assert run.display_name in card.inner_text()
    assert "busy" in card.inner_text()  # the node running it
    tab.shot("13-compute")

    page = tab.open(f"/ws/jobs/runs/{run.id}/logs")
    page.wait_for_function("document.querySelector('#log').textContent.includes('first line')")
    gate.touch()
    page.wait_for_function(
        "document.querySelector('#log').textContent.includes('second line')", timeout=60_000
    )
    page.wait_for_selector("#run-header .status:has-text('Completed')", timeout=60_000)
    assert page.inner_text("#log").count("first line") == 1
    tab.shot("14-job-logs")

    page = tab.open(f"/ws/jobs/runs/{run.id}/code")
    assert page.locator("#files a", has_text="README.md").count() == 1
    page.click("#files >> text=train.py")
    assert 'print("second line"' in page.inner_text("pre.text")
    with page.expect_download() as info:
        page.locator("#preview").get_by_role("link", name="Download").click()
    assert Path(info.value.path()).read_text() == SCRIPT

    page = tab.open(f"/ws/jobs/runs/{run.id}")
    assert re.search(r"Environment\s+greet:1", page.inner_text("section.card >> nth=0"))

    page = tab.open("/ws/jobs/environments")
    page.click("#environments >> text=greet")
    page.wait_for_selector("pre.spec")
    assert "GREETING" in page.inner_text("pre.spec")
    tab.shot("15-environment")
