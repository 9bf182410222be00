"""The live view of a run: ``RunDetails``, ``get_portal_url``, a run's own display, and
``wait_for_completion`` telling each change of status; in a real notebook kernel too."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest

from cumulo import ConfigError, Experiment, RunDetails, ScriptRunConfig, Workspace


@pytest.fixture
def trained() -> Workspace:
    ws = Workspace.create("view")
    with Experiment(ws, "iris").start_logging(display_name="parent") as run:
        for step in range(5):
            run.log("loss", 1 / (step + 1), step)
        with run.child_run("trial-1") as child:
            child.log("acc", 0.9)
    return ws


def test_outside_a_notebook_show_prints_the_facts(
    trained: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    run = next(Experiment(trained, "iris").get_runs())
    RunDetails(run).show()
    text = capsys.readouterr().out
    assert f"iris #1 parent ({run.id}): Completed" in text
    assert "loss: 0.2 (5 points)" in text and "1 child runs: 1 Completed" in text


def test_the_html_has_status_charts_and_children(trained: Workspace) -> None:
    run = next(Experiment(trained, "iris").get_runs())
    page = RunDetails(run).get_html()
    assert "Completed" in page and "<polyline" in page and "loss: 0.2" in page
    assert "trial-1" in page and "0.9" in page
    with pytest.raises(ConfigError, match="cumulo server"):
        run.get_portal_url()  # embedded: no studio serves it


@pytest.mark.slow
def test_wait_for_completion_tells_each_status_and_streams(tmp_path: Path) -> None:
    ws = Workspace.create("waits")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "t.py").write_text("print('epoch 1 done')\n")
    run = Experiment(ws, "w").submit(ScriptRunConfig(tmp_path / "src", "t.py"))
    out = io.StringIO()
    from cumulo.sdk.jobs import wait_for_completion

    wait_for_completion(run, show_output=True, out=out, timeout=120)
    text = out.getvalue()
    assert f"[{run.id[:8]}] Queued" in text or f"[{run.id[:8]}] Starting" in text
    assert f"[{run.id[:8]}] Completed" in text and "epoch 1 done" in text


@pytest.mark.slow
def test_the_portal_url_is_the_runs_studio_page(cumulo_server_url: str) -> None:
    ws = Workspace.create("portal-view", url=cumulo_server_url, exist_ok=True)
    with Experiment(ws, "p").start_logging() as run:
        run.log("x", 1.0)
    url = run.get_portal_url()
    assert url == f"{cumulo_server_url}/ws/portal-view/runs/{run.id}"
    page = httpx.get(url)
    assert page.status_code == 200 and run.id in page.text
    assert f'href="{url}"' in RunDetails(run).get_html()


NOTEBOOK_CELLS = [
    "from pathlib import Path\n"
    "from cumulo import Experiment, RunDetails, ScriptRunConfig, Workspace\n"
    "Path('src').mkdir()\n"
    "Path('src/train.py').write_text(\n"
    "    'import time\\nfrom cumulo import Run\\nrun = Run.get_context()\\n'\n"
    "    'for i in range(4):\\n    run.log(\"loss\", 1 / (i + 1))\\n'\n"
    "    '    print(\"epoch\", i, flush=True)\\n    time.sleep(0.5)\\n'\n"
    ")\n"
    "ws = Workspace.create('nb')\n"
    "run = Experiment(ws, 'live').submit(ScriptRunConfig('src', 'train.py'))",
    "run",  # the run's own display, which keeps itself current
    "view = RunDetails(run, interval=0.3)\nview.show()",
    "details = run.wait_for_completion(show_output=True)",
    "view.wait(60)\nimport time; time.sleep(4)  # the run's own display refreshes every 2 s",
]


@pytest.mark.slow
def test_a_notebook_sees_the_run_live(tmp_path: Path) -> None:
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in NOTEBOOK_CELLS]
    nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [json.dumps(cell.outputs) for cell in nb.cells]
    # The displays were updated in place: they end on the run's end, not on "Queued".
    assert "Completed" in outputs[1] and "Queued" not in outputs[1]
    assert "Completed" in outputs[2] and "<polyline" in outputs[2] and "epoch 3" in outputs[2]
    assert "epoch 0" in outputs[3] and "] Running" in outputs[3] and "Completed" in outputs[3]


def test_the_charts_are_the_runs_own_metrics_not_its_system_ones(trained: Workspace) -> None:
    run = next(Experiment(trained, "iris").get_runs())
    # Sorted by name, system/ series would come before "loss" and fill the chart limit.
    system = [("system/cpu_utilization_percentage", 50.0, s, 1 + s) for s in range(3)]
    system += [("system/system_memory_usage_megabytes", 900.0, s, 1 + s) for s in range(3)]
    trained.transport.tracking.log_batch(trained.name, run.id, metrics=system)
    page = RunDetails(run).get_html()
    assert "loss: 0.2" in page and "system/" not in page


def test_the_child_runs_table_shows_their_own_metrics_not_their_system_ones(
    trained: Workspace,
) -> None:
    run = next(Experiment(trained, "iris").get_runs())
    (child,) = run.get_children()
    # Four system/ series sort before "val_accuracy" and would take every column.
    names = ["cpu_utilization_percentage", "disk_available_megabytes", "disk_read_megabytes"]
    system = [(f"system/{n}", 1.0, 0, 1) for n in [*names, "network_receive_megabytes"]]
    trained.transport.tracking.log_batch(
        trained.name, child.id, metrics=[*system, ("val_accuracy", 0.85, 0, 1)]
    )
    page = RunDetails(run).get_html()
    assert ">acc<" in page and ">val_accuracy<" in page and "0.85" in page
    assert "system/" not in page
