"""The example notebooks run top to bottom in a real kernel, in a fresh home and folder, and
do what their stories say: each one's checks read its outputs and the workspace it left."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cumulo import Dataset, Experiment, Model, Workspace
from cumulo.sdk.pipelines import PipelineRun
from cumulo.sdk.workspace import SweepRun

NOTEBOOKS = Path(__file__).parents[2] / "examples" / "notebooks"


def _texts(cells: list[Any]) -> list[str]:
    """Every output of every code cell as text: streams, plain and HTML displays, errors."""
    out = []
    for cell in cells:
        for o in cell.get("outputs", []):
            if o["output_type"] == "stream":
                out.append(o["text"])
            elif o["output_type"] == "error":
                out.append("\n".join(o["traceback"]))
            else:
                data = o.get("data", {})
                out += [data[k] for k in ("text/plain", "text/html") if k in data]
    return out


def _runs(ws: Workspace, experiment: str) -> list[Any]:
    return sorted(Experiment(ws, experiment).get_runs(), key=lambda r: r.number)


def check_quickstart(out: str, html: list[str], folder: Path) -> None:
    assert "'Completed'" in out and "lr=0.1" in out and "epoch 4" in out


def check_train_on_compute(out: str, html: list[str], folder: Path) -> None:
    ws = Workspace.get("notebooks")
    assert ws.compute_targets["cpu-pool"].kind == "pool"
    pool, local = _runs(ws, "train-on-compute")
    assert (pool.info.compute_target, local.info.compute_target) == ("cpu-pool", "local")
    assert pool.status == local.status == "Completed"
    assert len(pool.get_metrics()["accuracy"]) == 8 and pool.get_params()["epochs"] == "8"
    assert pool.get_file_names(prefix="outputs") == ["outputs/model.pkl"]
    # The live view was redrawn until the end: the final state, a chart and the job's log.
    view = next(h for h in html if "<svg" in h)
    assert "Completed" in view and "accuracy:" in view and "epoch 7: accuracy" in view
    assert "Completed on cpu-pool" in out and "predicted [" in out


def check_sweep(out: str, html: list[str], folder: Path) -> None:
    ws = Workspace.get("notebooks")
    (parent,) = _runs(ws, "sweep")
    sweep = SweepRun.get(ws, parent.id)
    assert sweep.status == "Completed"
    trials = sweep.get_children_sorted_by_primary_metric()
    assert len(trials) == 6
    best = sweep.get_best_run_by_primary_metric()
    assert best is not None and best.id == trials[0]["run_id"]
    finished = [t["primary_metric"] for t in trials if t["status"] == "Completed"]
    assert best.get_metrics()["accuracy"][-1] == trials[0]["primary_metric"] == max(finished)
    assert sweep.get_properties()["sweep.best_run_id"] == best.id
    # Trial 2 of seed 14 draws alpha ~10: the bandit stops it against a finished trial.
    stopped = [ws.get_run(t["run_id"]) for t in trials if t["status"] == "Canceled"]
    assert stopped, trials
    for run in stopped:
        assert '"limit"' in run.get_properties()["sweep.stopped_reason"]
        assert len(run.get_metrics()["accuracy"]) < 8
    assert f"{len(stopped)} of 6 trials stopped early" in out and "best trial:" in out


def check_pipeline(out: str, html: list[str], folder: Path) -> None:
    ws = Workspace.get("notebooks")
    first, second, third = (PipelineRun.get(ws, r.id).get_steps() for r in _runs(ws, "pipeline"))
    names = ["prepare", "train", "evaluate"]
    assert [s["name"] for s in first] == names and {s["state"] for s in first} == {"completed"}
    # Submitted again unchanged: every step reused the first run's step, none ran.
    assert [s["state"] for s in second] == ["reused"] * 3
    assert [s["reused_from"] for s in second] == [s["run_id"] for s in first]
    # A new C: prepare is reused, train runs because of C, evaluate because its model changed.
    assert [s["state"] for s in third] == ["reused", "completed", "completed"]
    assert third[1]["reason"] == "parameter C changed (1.0 -> 0.05)"
    assert third[2]["reason"] == "input model changed"
    assert "Completed (reused from run" in out and "C=0.05: test accuracy" in out


def check_dataset(out: str, html: list[str], folder: Path) -> None:
    ws = Workspace.get("notebooks")
    versions = Dataset.get_versions(ws, "iris")
    assert [(v.version, v.profile["rows"]) for v in versions] == [(2, 150), (1, 100)]
    assert "the same file again is still version 1" in out
    assert Dataset.get_by_name(ws, "iris-notes").to_path() == ["/README.txt"]
    (run,) = versions[0].get_runs()
    assert run.status == "Completed" and run.get_metrics()["rows"] == 150
    assert versions[1].get_runs() == []
    labels = {(n["kind"], n["label"]) for n in Model(ws, "iris").get_lineage()["nodes"]}
    assert {("dataset", "iris:2"), ("model", "iris:1")} <= labels
    assert "dataset iris:2  ->  run" in out and "->  model iris:1" in out


def check_register_and_deploy(out: str, html: list[str], folder: Path) -> None:
    answered = re.search(r"200 \{'predictions': (\[[\d, ]+\])\}\ntrue labels: (\[[\d, ]+\])", out)
    assert answered, out
    predicted, truth = (ast.literal_eval(g) for g in answered.groups())
    assert len(predicted) == 8 and sum(p == t for p, t in zip(predicted, truth, strict=True)) >= 6
    assert "without the key: 401" in out and "loaded model.pkl" in out
    assert re.search(r"(\d+) of 92 right", out)
    ws = Workspace.get("notebooks")
    assert ws.endpoints == {} and "endpoints: [] | models: ['digits']" in out
    champion = Model(ws, "digits", alias="champion")
    assert champion.version == 1 and champion.get_file_names() == ["model.pkl"]
    # The requests kept with their answers were shown.
    assert any("latency_ms" in h and "predictions" in h for h in html)


def check_mlflow(out: str, html: list[str], folder: Path) -> None:
    url = re.search(r"cumulo server ready at (http://127\.0\.0\.1:\d+)", out)
    assert url and "server stopped with" in out
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url.group(1)}/health", timeout=2)
    # The server is gone; its home opens embedded and holds what MLflow logged.
    ws = Workspace.get("mlflow-users", home=folder / "mlflow-home")
    runs = sorted(Experiment(ws, "iris").get_runs(), key=lambda r: r.get_params()["C"])
    assert [r.display_name for r in runs] == ["C=0.01", "C=1.0"]
    assert all(len(r.get_metrics()["accuracy"]) == 3 for r in runs)
    best = max(runs, key=lambda r: r.get_metrics()["accuracy"][-1])
    champion = Model(ws, "iris-classifier", alias="champion")
    assert champion.is_mlflow and champion.run_id == best.id and "sklearn" in champion.flavors
    assert f"iris-classifier version {champion.version} predicts" in out


CHECKS: dict[str, Callable[[str, list[str], Path], None]] = {
    "quickstart.ipynb": check_quickstart,
    "train-on-compute.ipynb": check_train_on_compute,
    "sweep.ipynb": check_sweep,
    "pipeline.ipynb": check_pipeline,
    "dataset.ipynb": check_dataset,
    "register-and-deploy.ipynb": check_register_and_deploy,
    "mlflow.ipynb": check_mlflow,
}


def test_every_notebook_is_checked_and_committed_without_outputs() -> None:
    assert sorted(CHECKS) == sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    for path in NOTEBOOKS.glob("*.ipynb"):
        code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code), path.name


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs(name: str, tmp_path: Path) -> None:
    import nbclient
    import nbformat

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    texts = _texts(nb.cells)
    out = "\n".join(texts)
    assert "Traceback" not in out
    CHECKS[name](out, [t for t in texts if t.lstrip().startswith("<")], tmp_path)
