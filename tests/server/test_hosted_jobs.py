"""A `cumulo server` runs the jobs submitted to it: no scheduler to start by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server

from cumulo import Experiment, ScriptRunConfig, Workspace

SCRIPT = """
import os
from cumulo import Run
import mlflow
run = Run.get_context()
run.log("answer", 42.0)
mlflow.log_param("via", "mlflow")  # MLFLOW_TRACKING_URI and MLFLOW_RUN_ID point at the same run
print("reported through", os.environ["CUMULO_URL"])
"""


def _token(home: Path) -> str:
    from tests.server.test_auth import new_token

    return new_token(home, "default", "contributor")


@pytest.mark.slow
@pytest.mark.parametrize("auth", ["none", "token"])
def test_server_hosts_the_scheduler(tmp_path: Path, auth: str) -> None:
    home, port = tmp_path / "home", free_port()
    proc = start_cumulo_server(home, port, "--auth", auth)
    try:
        token = _token(home) if auth == "token" else None
        ws = Workspace.connect(f"http://127.0.0.1:{port}", "default", token=token)
        src = tmp_path / "src"
        src.mkdir()
        (src / "job.py").write_text(SCRIPT)
        run = Experiment(ws, "hosted").submit(ScriptRunConfig(src, "job.py"))
        details = run.wait_for_completion(show_output=False, raise_on_error=True)
        assert details["status"] == "Completed"
        assert run.get_metrics() == {"answer": 42.0}
        assert run.get_params() == {"via": "mlflow"}
        assert f"reported through http://127.0.0.1:{port}" in run.get_logs()
    finally:
        stop_cumulo_server(proc)
