"""Jobs through a real HTTP server hosting the scheduler (uvicorn on an ephemeral port)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from tests.conftest import free_port
from tests.jobs.conftest import wait_until, write_script

from cumulo import ComputeTarget, Environment, Experiment, LocalPool, ScriptRunConfig, Workspace
from cumulo.compute.runner import run_job
from cumulo.core.settings import Settings
from cumulo.sdk.http import HttpChannel, HttpTransport
from cumulo.server.app import create_app
from cumulo.services.context import open_services
from cumulo.services.scheduler import HTTP_LINK


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The app's lifespan starts the scheduler; jobs report back to this URL.
    settings = Settings.load(home=tmp_path / "server-home", public_url=url)
    services = open_services(settings)
    config = uvicorn.Config(
        create_app(settings, services), host="127.0.0.1", port=port, log_level="warning"
    )
    http = uvicorn.Server(config)
    thread = threading.Thread(target=http.run, daemon=True)
    thread.start()
    wait_until(lambda: http.started, 30, "the server to start")
    services.scheduler.start(url=url)
    try:
        yield url
    finally:
        services.scheduler.stop(stop_nodes=True)
        http.should_exit = True
        thread.join(10)


@pytest.fixture
def remote(server: str) -> Workspace:
    name = f"ws-{uuid.uuid4().hex[:8]}"
    HttpTransport(server).tracking.create_workspace(name)
    return Workspace.connect(server, name)


SCRIPT = """\
import os, sys
from cumulo import Run
run = Run.get_context()
run.log("loss", 0.25)
run.flush()
print("url", os.environ["CUMULO_URL"], "mlflow", os.environ["MLFLOW_TRACKING_URI"])
print("mlflow run", os.environ["MLFLOW_RUN_ID"] == os.environ["CUMULO_RUN_ID"])
print("store vars", "CUMULO_DATABASE_URL" in os.environ)
os.makedirs("outputs", exist_ok=True)
open("outputs/result.txt", "w").write(sys.argv[1])
"""


@pytest.mark.parametrize("target", ["local", "pool"])
def test_submit_follow_and_outputs_over_http(
    remote: Workspace, server: str, target: str, tmp_path: Path
) -> None:
    if target == "pool":
        ComputeTarget.create(
            remote, "pool", LocalPool(max_nodes=1, idle_seconds_before_scaledown=5)
        )
    src = tmp_path / "src"
    write_script(src, "remote.py", SCRIPT)
    exp = Experiment(remote, "over-http")
    config = ScriptRunConfig(src, "remote.py", arguments=["42"], compute_target=target)
    run = exp.submit(config)
    details = run.wait_for_completion(show_output=False, raise_on_error=True)
    assert details["status"] == "Completed"
    logs = run.get_logs()
    assert remote.get_mlflow_tracking_uri() == f"{server}/ws/{remote.name}"
    assert f"url {server} mlflow {remote.get_mlflow_tracking_uri()}" in logs
    assert "mlflow run True" in logs
    assert "store vars False" in logs  # the script talks to the server, not the database
    assert run.get_metrics() == {"loss": 0.25}
    assert "outputs/result.txt" in run.get_file_names()
    # The same code again: the snapshot is found by its id and not sent twice.
    again = exp.submit(config)
    assert again.get_properties()["snapshot"] == run.get_properties()["snapshot"]
    again.wait_for_completion(show_output=False, raise_on_error=True)
    restored = run.restore_snapshot(tmp_path / "restored")
    assert (restored / "remote.py").read_text() == SCRIPT


def test_environments_and_targets_over_http(remote: Workspace, tmp_path: Path) -> None:
    env = Environment("six", pip_requirements=["six==1.17.0"]).build(remote, show_output=False)
    assert env.version == 1 and env.build_status == "Ready"
    assert Environment("six", pip_requirements=["six==1.17.0"]).register(remote).version == 1
    assert [e.name for e in Environment.list(remote)] == ["six"]
    pool = ComputeTarget.create(remote, "p", LocalPool(max_nodes=2))
    assert sorted(remote.compute_targets) == ["local", "p"]
    assert pool.get_status()["current_node_count"] == 0
    pool.delete()


def test_the_runner_reports_over_http(remote: Workspace, server: str, tmp_path: Path) -> None:
    """What a Ray node does when it can only reach the server: logs, status, files."""
    # An interactive run stands in for a dispatched job.
    run = Experiment(remote, "agent").start_logging()
    workdir = tmp_path / "work"
    write_script(
        workdir,
        "job.py",
        "import os\nos.makedirs('outputs')\nopen('outputs/a', 'w')\nprint('hi')\n",
    )
    spec = {"run_id": run.id, "workspace": remote.name, "script": "job.py", "env": {}}
    channel = HttpChannel(server, None, remote.name, run.id)
    result = run_job(spec, channel, workdir)
    assert result["status"] == "Completed"
    assert run.get_status() == "Completed"
    assert "hi\n" in run.get_logs()
    assert "outputs/a" in run.get_file_names()
    assert json.loads((workdir / ".cumulo_job" / "result.json").read_text())["exit_code"] == 0


def test_the_agent_program_reports_through_the_link_its_job_names(
    remote: Workspace, server: str, tmp_path: Path
) -> None:
    """The agent as a Ray node starts it: no store, only the server, through the HTTP link."""
    run = Experiment(remote, "agent").start_logging()
    workdir = tmp_path / f"{run.id}-1"
    write_script(workdir, "job.py", "print('over http')\n")
    spec = {"run_id": run.id, "workspace": remote.name, "script": "job.py", "env": {}}
    (workdir / ".cumulo_job").mkdir()
    (workdir / ".cumulo_job" / "spec.json").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUMULO_", "MLFLOW_"))}
    env.update(CUMULO_URL=server, CUMULO_AGENT_LINK=HTTP_LINK)
    agent = [sys.executable, "-m", "cumulo.compute.agent", "run", str(workdir)]
    subprocess.run(agent, env=env, cwd=workdir, check=True, timeout=120)
    assert run.get_status() == "Completed"
    assert "over http\n" in run.get_logs()
    assert "user_logs/std_log.txt" in run.get_file_names()


def test_the_script_cannot_end_its_own_job(remote: Workspace, tmp_path: Path) -> None:
    """MLflow ends its active run at exit; the job still ends as its script did, with all logs."""
    src = tmp_path / "src"
    write_script(
        src,
        "ends_early.py",
        "import sys, time, mlflow\n"
        "mlflow.log_param('lr', 0.1)\n"
        "mlflow.end_run()\n"
        "time.sleep(1)\n"
        "print('still running')\n"
        "raise SystemExit('the data file is missing')\n",
    )
    run = Experiment(remote, "owned").submit(ScriptRunConfig(src, "ends_early.py"))
    wait_until(lambda: "still running" in run.get_logs(), what="the last line")
    details = run.wait_for_completion(show_output=False)
    assert details["status"] == "Failed"  # not the FINISHED that mlflow.end_run() asked for
    assert "the data file is missing" in details["error"]["message"]
    assert run.get_params() == {"lr": "0.1"}
    history = [s["status"] for s in details["statusHistory"]]
    assert history[-2:] == ["Finalizing", "Failed"]


def test_a_script_that_marks_its_run_failed_fails_the_job(
    remote: Workspace, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write_script(
        src,
        "judge.py",
        "from cumulo import Run\n"
        "run = Run.get_context()\n"
        "run.fail('validation accuracy 0.31 is under the 0.9 bar')\n"
        "print('exiting normally')\n",
    )
    run = Experiment(remote, "judged").submit(ScriptRunConfig(src, "judge.py"))
    details = run.wait_for_completion(show_output=False)
    assert details["status"] == "Failed"  # exit code 0, but the script said so
    assert details["error"]["message"] == "validation accuracy 0.31 is under the 0.9 bar"
    assert "exiting normally" in run.get_logs()
