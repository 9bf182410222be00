"""MLflow calls inside a job of an embedded workspace land in the job's run.

No server hosts the workspace, so the job's runner serves the store to the
script on a loopback port, for that job only (``cumulo.server.bridge``).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.jobs.conftest import write_script

from cumulo import Experiment, ScriptRunConfig, Workspace
from cumulo.core.settings import Settings
from cumulo.server.bridge import LoopbackBridge

SCRIPT = """
import os, httpx, mlflow
uri = os.environ["MLFLOW_TRACKING_URI"]
anonymous = httpx.get(uri + "/api/2.0/mlflow/experiments/search", timeout=120)
print("anonymous", anonymous.status_code)
with mlflow.start_run() as active:
    print("same run", active.info.run_id == os.environ["CUMULO_RUN_ID"])
    mlflow.log_param("alpha", 0.5)
    for step in range(3):
        mlflow.log_metric("rmse", 1.0 / (step + 1), step=step)
    mlflow.set_tag("framework", "plain")
    with open("note.txt", "w") as f:
        f.write("from mlflow")
    mlflow.log_artifact("note.txt")
"""


@pytest.mark.slow
def test_mlflow_calls_in_an_embedded_job_log_to_its_run(tmp_path: Path) -> None:
    ws = Workspace.create("bridge")
    write_script(tmp_path / "src", "train.py", SCRIPT)
    run = Experiment(ws, "mlflow-job").submit(ScriptRunConfig(tmp_path / "src", "train.py"))
    details = run.wait_for_completion(show_output=False, timeout=180)
    logs = run.get_logs()
    assert details["status"] == "Completed", logs
    assert "same run True" in logs and "anonymous 401" in logs
    assert run.get_params()["alpha"] == "0.5"
    assert run.get_tags()["framework"] == "plain"
    assert run.get_metric_history("rmse")["value"] == [1.0, 0.5, 1.0 / 3]
    assert any(name.endswith("note.txt") for name in run.get_file_names())


@pytest.mark.slow
def test_the_bridge_answers_only_its_job_and_stops(tmp_path: Path) -> None:
    settings = Settings.load(home=tmp_path / "home")
    bridge = LoopbackBridge("default", "r1", settings)
    try:
        assert bridge.env["MLFLOW_TRACKING_URI"] == bridge.url
        assert httpx.get(bridge.url + "/health", timeout=30).status_code == 401
        auth = {"authorization": f"Bearer {bridge.env['MLFLOW_TRACKING_TOKEN']}"}
        assert httpx.get(bridge.url + "/health", headers=auth, timeout=30).status_code == 200
    finally:
        bridge.close()
    with pytest.raises(httpx.TransportError):
        httpx.get(bridge.url + "/health", timeout=2)
