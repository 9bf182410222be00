"""Faults: killed workers, schedulers that die mid-run, several schedulers at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.jobs.conftest import kill, pid_alive, wait_until, write_script

from cumulo import ComputeTarget, Experiment, LocalPool, ScriptRunConfig, Workspace
from cumulo.services.context import open_services
from cumulo.services.scheduler import Scheduler

GATED = (
    "import os, sys, time\n"
    "print('waiting', flush=True)\n"
    "while not os.path.exists(sys.argv[1]):\n"
    "    time.sleep(0.05)\n"
    "print('released')\n"
)


@pytest.fixture
def short_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leases of 1.5 s; requested before ``ws``, whose settings read the variable."""
    monkeypatch.setenv("CUMULO_LEASE_SECONDS", "1.5")


def _job(ws: Workspace, run_id: str):  # type: ignore[no-untyped-def]
    assert ws._settings is not None
    return open_services(ws._settings).jobs.get_job(ws.name, run_id)


def test_a_killed_worker_fails_its_run_naming_the_signal(ws: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_script(src, "gated.py", GATED)
    run = Experiment(ws, "kill").submit(
        ScriptRunConfig(src, "gated.py", arguments=[tmp_path / "gate"])
    )
    wait_until(lambda: "waiting" in run.get_logs(), what="the script to start")
    agent = _job(ws, run.id).handle["pid"]
    os.kill(agent, signal.SIGKILL)
    details = run.wait_for_completion(show_output=False)
    assert details["status"] == "Failed"
    assert "SIGKILL" in details["error"]["message"]


def test_a_killed_pool_node_fails_its_run(
    short_leases: None, ws: Workspace, tmp_path: Path
) -> None:
    pool = ComputeTarget.create(
        ws, "pool", LocalPool(max_nodes=1, idle_seconds_before_scaledown=30)
    )
    src = tmp_path / "src"
    write_script(src, "gated.py", GATED)
    run = Experiment(ws, "kill-node").submit(
        ScriptRunConfig(src, "gated.py", arguments=[tmp_path / "gate"], compute_target="pool")
    )
    wait_until(lambda: "waiting" in run.get_logs(), what="the script to start")
    node = pool.get_status()["nodes"][0]
    script = _job(ws, run.id).handle["pid"]
    os.kill(node["pid"], signal.SIGKILL)
    details = run.wait_for_completion(show_output=False)
    assert details["status"] == "Failed"
    assert "pool node" in details["error"]["message"]
    assert "SIGKILL" in details["error"]["message"]
    wait_until(lambda: not pid_alive(script), 30, "the script to die with its node")


HOST = textwrap.dedent(
    """
    import sys, time
    from cumulo import Experiment, ScriptRunConfig, Workspace
    ws = Workspace.get(sys.argv[1])
    exp = Experiment(ws, "restart")
    for retries in (0, 1, 0):
        config = ScriptRunConfig(sys.argv[2], "gated.py", arguments=[sys.argv[3]],
                                 max_retries=retries)
        print(exp.submit(config).id, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.slow
def test_scheduler_restart_finds_each_jobs_real_state(
    short_leases: None, ws: Workspace, tmp_path: Path
) -> None:
    """A host dies mid-run: a running job goes on, a lost one fails or is retried."""
    src = tmp_path / "src"
    write_script(src, "gated.py", GATED)
    gate = tmp_path / "gate"
    host = subprocess.Popen(
        [sys.executable, "-c", HOST, ws.name, str(src), str(gate)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "CUMULO_LEASE_SECONDS": "1.5"},
    )
    try:
        assert host.stdout is not None
        ids = [host.stdout.readline().strip() for _ in range(3)]
        runs = [ws.get_run(i) for i in ids]
        wait_until(lambda: all(r.get_status() == "Running" for r in runs), what="three jobs to run")
    finally:
        host.kill()
        host.wait()
    survivor, retried, lost = runs
    for run in (retried, lost):  # lost jobs: their agents die too, nobody reports on them
        agent = _job(ws, run.id).handle["pid"]
        kill(agent)
        wait_until(lambda a=agent: not pid_alive(a), 30, "the agent to die")
    gate.write_text("go")

    # A new scheduler (this process) takes the expired leases over.
    assert survivor.wait_for_completion(show_output=False)["status"] == "Completed"
    assert "released" in survivor.get_logs()
    lost_details = lost.wait_for_completion(show_output=False)
    assert lost_details["status"] == "Failed"
    assert "lost" in lost_details["error"]["message"]
    retried_details = retried.wait_for_completion(show_output=False)
    assert retried_details["status"] == "Completed"
    assert "retrying, attempt 2" in retried.get_logs()
    assert _job(ws, retried.id).attempts == 2
    assert all(_job(ws, r.id).state == "done" for r in runs)


@pytest.mark.slow
def test_two_schedulers_dispatch_each_job_once(ws: Workspace, tmp_path: Path) -> None:
    assert ws._settings is not None
    services = open_services(ws._settings)
    first = Scheduler(services.jobs, owner="first").start()
    second = Scheduler(services.jobs, owner="second").start()
    try:
        src = tmp_path / "src"
        write_script(src, "hi.py", "print('hi')\n")
        exp = Experiment(ws, "two")
        jobs = services.jobs
        # Submitted through the service so this process hosts no third scheduler.

        snap = jobs.take_snapshot(ws.name, src)
        ids = [
            jobs.submit_job(ws.name, exp.id, {"script": "hi.py", "snapshot": snap.hash}).id
            for _ in range(12)
        ]
        wait_until(
            lambda: all(ws.get_run(i).get_status() == "Completed" for i in ids),
            what="every job to complete",
        )
        attempts = {jobs.get_job(ws.name, i).attempts for i in ids}
        assert attempts == {1}
        assert all(ws.get_run(i).get_logs().count("hi\n") == 1 for i in ids)
    finally:
        first.stop()
        second.stop()
