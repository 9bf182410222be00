"""Jobs outlive the server that launched them.

Two `cumulo server`s share one PostgreSQL and one artifact folder, and name
both as the workspace's service address. A job's script reports to either;
while neither answers its metric batches wait on disk and are sent again,
each stored once, when one answers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server
from tests.jobs.conftest import wait_until

from cumulo import Experiment, ScriptRunConfig, Workspace
from cumulo.sdk.http import HttpTransport

TICKS = 80  # one point and one line every 0.1 s: about 8 s

SCRIPT = """
import sys, time
from cumulo import Run
run = Run.get_context()
for step in range(int(sys.argv[1])):
    run.log("tick", float(step), step=step)
    print("tick", step)
    time.sleep(0.1)
"""


class Servers:
    """Two servers over one store; either can be killed and started again."""

    def __init__(self, postgres_url: str, root: Path) -> None:
        self.ports = [free_port(), free_port()]
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        self.homes = [root / "first", root / "second"]
        self.store = ["--database-url", postgres_url, "--artifact-root", str(root / "artifacts")]
        self.env = {"CUMULO_SERVICE_URLS": ",".join(self.urls), "CUMULO_LEASE_SECONDS": "3"}
        self.procs: list[subprocess.Popen[bytes] | None] = [None, None]

    def start(self, which: int) -> None:
        self.procs[which] = start_cumulo_server(
            self.homes[which], self.ports[which], *self.store, env=self.env
        )

    def kill(self, which: int) -> None:
        proc = self.procs[which]
        assert proc is not None
        proc.send_signal(signal.SIGKILL)  # no shutdown, no goodbye
        proc.wait()

    def log(self, which: int) -> str:
        return (self.homes[which] / "server.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                stop_cumulo_server(proc)


@pytest.fixture
def servers(postgres_url: str, tmp_path: Path) -> Iterator[Servers]:
    both = Servers(postgres_url, tmp_path)
    try:
        both.start(0)
        both.start(1)
        yield both
    finally:
        both.stop()


def _submit(servers: Servers, tmp_path: Path) -> tuple[str, str]:
    """Submit the ticking job through the first server: (workspace, run id)."""
    name = f"ws-{uuid.uuid4().hex[:10]}"
    HttpTransport(servers.urls[0]).create_workspace(name)
    src = tmp_path / "src"
    src.mkdir()
    (src / "ticks.py").write_text(SCRIPT)
    ws = Workspace.connect(servers.urls[0], name)
    run = Experiment(ws, "failover").submit(
        ScriptRunConfig(src, "ticks.py", arguments=[str(TICKS)])
    )
    return name, run.id


def _job_pid(servers: Servers, run_id: str) -> int:
    """The pid of the job's script, from the folder its agent runs in."""
    import json

    for home in servers.homes:
        for child in home.glob("jobs/**/child.json"):
            if run_id in str(child):
                return int(json.loads(child.read_text())["pid"])
    return 0


def _ticking(servers: Servers, workspace: str, run_id: str, url: str, at_least: int) -> bool:
    try:
        http = HttpTransport(url)
        return len(http.get_metric_history(workspace, run_id, "tick")["step"]) >= at_least
    except Exception:
        return False


def _finished(workspace: str, run_id: str, url: str) -> Any:
    try:
        run = HttpTransport(url).get_run(workspace, run_id)
    except Exception:
        return None
    return run if run.status in ("Completed", "Failed", "Canceled") else None


def _check_everything_stored(workspace: str, run_id: str, url: str) -> None:
    http = HttpTransport(url)
    run = wait_until(lambda: _finished(workspace, run_id, url), 120, "the job to end")
    assert run.status == "Completed", run.error
    assert run.error is None
    steps = http.get_metric_history(workspace, run_id, "tick")["step"]
    assert sorted(steps) == list(range(TICKS))  # every point, none twice
    logs = httpx.get(
        f"{url}/api/v1/workspaces/{workspace}/jobs/{run_id}/logs", params={"limit": 5000}
    ).json()
    text = "".join(chunk["text"] for chunk in logs["chunks"])
    printed = [line for line in text.splitlines() if line.startswith("tick ")]
    assert printed == [f"tick {step}" for step in range(TICKS)]


def _warnings_about_lost_data(log: str) -> list[str]:
    return [
        line
        for line in log.splitlines()
        if "WARNING" in line and ("deliver" in line or "lost" in line or "dropped" in line)
    ]


@pytest.mark.slow
def test_a_job_finishes_through_the_other_server_when_its_own_is_killed(
    servers: Servers, tmp_path: Path
) -> None:
    workspace, run_id = _submit(servers, tmp_path)
    wait_until(
        lambda: _ticking(servers, workspace, run_id, servers.urls[1], 15), 90, "first points"
    )
    servers.kill(0)
    pid = _job_pid(servers, run_id)
    assert pid and _alive(pid), "the job died with the server that launched it"
    _check_everything_stored(workspace, run_id, servers.urls[1])
    assert _warnings_about_lost_data(servers.log(1)) == []


@pytest.mark.slow
def test_points_logged_while_no_server_answers_are_replayed_once(
    servers: Servers, tmp_path: Path
) -> None:
    workspace, run_id = _submit(servers, tmp_path)
    wait_until(
        lambda: _ticking(servers, workspace, run_id, servers.urls[1], 15), 90, "first points"
    )
    servers.kill(0)
    servers.kill(1)
    time.sleep(2.0)  # the script goes on logging while no server answers
    servers.start(1)
    _check_everything_stored(workspace, run_id, servers.urls[1])
    assert _warnings_about_lost_data(servers.log(1)) == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
