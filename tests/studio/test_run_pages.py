"""Every tab of a run's page, for every kind of run in every status; images kept apart."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from studio_kit import LiveServer, png

from cumulo.core.settings import Settings
from cumulo.core.status import RunStatus
from cumulo.server.studio.runs import TABS

ENDED = ["Running", "Completed", "Failed", "Canceled"]
# A run logged from a script starts running; only a submitted job waits in a queue.
CASES = [("job", "Queued")] + [
    (kind, status) for kind in ("interactive", "job", "child", "mlflow") for status in ENDED
]
# What each status leaves on a run of each kind: a job's failure has no traceback.
JOB_ERRORS: dict[str, dict[str, Any]] = {
    "Failed": {"message": "The script exited with code 1: ValueError: bad batch"},
    "Canceled": {"code": "Canceled", "message": "The run was canceled by a user."},
}


@dataclass
class Runs:
    client: httpx.Client
    workspace: str
    ids: dict[tuple[str, str], str] = field(default_factory=dict)


def _interactive(ws: Any, exp: Any, status: str, parent: Any = None) -> str:
    run = parent.child_run(f"child-{status}") if parent else exp.start_logging(display_name=status)
    run.log_params({"lr": 0.1})
    run.log("loss", 0.5, 0)
    run.log("loss", 0.25, 1)
    run.log_row("pr", precision=0.9, recall=0.8)
    if status == "Failed":
        try:
            raise ValueError("bad batch")
        except ValueError as exc:
            run.fail(exc)
    elif status == "Canceled":
        run.cancel()
    elif status == "Completed":
        run.complete()
    ws.flush()
    return str(run.id)


def _job(services: Any, ws: str, exp_id: int, status: str) -> str:
    """A job run as the scheduler leaves it: a job's error is a message and maybe a code."""
    tracking = services.tracking
    run = tracking.create_run(ws, exp_id, display_name=f"job-{status}", kind="job", status="Queued")
    if status != "Queued":
        tracking.store.set_run_status(ws, run.id, RunStatus(status), error=JOB_ERRORS.get(status))
    return str(run.id)


def _mlflow(url: str, exp_name: str, status: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(url)
    exp = client.get_experiment_by_name(exp_name)
    exp_id = exp.experiment_id if exp else client.create_experiment(exp_name)
    run = client.create_run(exp_id, run_name=f"mlflow-{status}")
    client.log_param(run.info.run_id, "alpha", "0.5")
    client.log_metric(run.info.run_id, "rmse", 0.7, step=0)
    ended = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}
    if status in ended:
        client.set_terminated(run.info.run_id, ended[status])
    return str(run.info.run_id)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    from cumulo import Workspace
    from cumulo.sdk.workspace import Experiment
    from cumulo.services.context import open_services

    home = tmp_path_factory.mktemp("run-pages")
    settings = Settings.load(home=home, environ={})
    ws = Workspace.create("default", home=home, exist_ok=True)
    exp = Experiment(ws, "kinds")
    parent = exp.start_logging(display_name="sweep")
    out_ids: dict[tuple[str, str], str] = {}
    services = open_services(settings)
    with LiveServer(settings) as server, httpx.Client(base_url=server.url) as client:
        for kind, status in CASES:
            if kind == "job":
                out_ids[kind, status] = _job(services, ws.name, exp.id, status)
            elif kind == "mlflow":
                out_ids[kind, status] = _mlflow(server.url, "mlflow-kinds", status)
            else:
                out_ids[kind, status] = _interactive(
                    ws, exp, status, parent if kind == "child" else None
                )
        yield Runs(client, ws.name, out_ids)


@pytest.mark.parametrize(("kind", "status"), CASES)
def test_every_tab_of_every_run_renders(runs: Runs, kind: str, status: str) -> None:
    run_id = runs.ids[kind, status]
    base = f"/ws/{runs.workspace}/runs/{run_id}"
    for tab, label in TABS:
        page = runs.client.get(base if tab == "overview" else f"{base}/{tab}")
        assert page.status_code == 200, f"{kind} run, {status}, tab {label}: {page.text[:300]}"
        assert "run-tabs" in page.text
    header = runs.client.get(f"{base}/header")
    assert header.status_code == 200
    overview = runs.client.get(base).text
    if status == "Failed" and kind == "job":
        assert "The script exited with code 1" in overview
        assert "Full traceback" not in overview  # nothing to unfold
    if status == "Failed" and kind in ("interactive", "child"):
        assert "Full traceback" in overview and "bad batch" in overview


def test_images_logged_under_one_name_are_all_kept(tmp_path: Path) -> None:
    from cumulo import Workspace
    from cumulo.sdk.workspace import Experiment

    home = tmp_path / "home"
    ws = Workspace.create("default", home=home)
    run = Experiment(ws, "images").start_logging()
    colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200)]
    for i, rgb in enumerate(colours):
        image = tmp_path / f"{i}.png"
        image.write_bytes(png(8, 8, rgb))
        run.log_image("confusion_matrix", path=image, description=f"epoch {i}")
    run.complete()

    paths = run.get_metrics()["confusion_matrix"]
    assert len(set(paths)) == 3, paths
    stored = [ws.transport.tracking.open_artifact(ws.name, run.id, p).read() for p in paths]
    assert stored == [png(8, 8, rgb) for rgb in colours]  # each image, in the order logged

    # A run opened again later numbers on from what is stored.
    again = ws.get_run(run.id)
    again.log_image("confusion_matrix", path=tmp_path / "0.png")
    ws.flush()
    assert len(set(again.get_metrics()["confusion_matrix"])) == 4

    with LiveServer(Settings.load(home=home, environ={})) as server:
        gallery = httpx.get(f"{server.url}/ws/default/runs/{run.id}/images").text
    for p in paths:
        assert p in gallery
