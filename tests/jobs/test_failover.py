"""Jobs outlive the server that launched them.

Two `cumulo server`s share one PostgreSQL and one artifact folder, and name
both as the workspace's service address. A job's script reports to either;
while neither answers its metric batches wait on disk and are sent again,
each stored once, when one answers.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server
from tests.jobs.conftest import wait_until

from cumulo import Experiment, ScriptRunConfig, Unavailable, Workspace
from cumulo.compute.runner import run_job
from cumulo.sdk.http import HttpChannel, HttpTransport
from cumulo.sdk.progress import CountingReader

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
    HttpTransport(servers.urls[0]).tracking.create_workspace(name)
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
        return len(http.tracking.get_metric_history(workspace, run_id, "tick")["step"]) >= at_least
    except Exception:
        return False


def _finished(workspace: str, run_id: str, url: str) -> Any:
    try:
        run = HttpTransport(url).tracking.get_run(workspace, run_id)
    except Exception:
        return None
    return run if run.status in ("Completed", "Failed", "Canceled") else None


def _check_everything_stored(workspace: str, run_id: str, url: str) -> None:
    http = HttpTransport(url)
    run = wait_until(lambda: _finished(workspace, run_id, url), 120, "the job to end")
    assert run.status == "Completed", run.error
    assert run.error is None
    steps = http.tracking.get_metric_history(workspace, run_id, "tick")["step"]
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


# ------------------------------------------------------- transport and runner
class Hangup:
    """A listener that reads a request and closes the connection without answering,
    as a server killed while it handles a call does."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if conn.recv(65536):
                    self.requests += 1


def test_a_file_read_through_a_progress_counter_uploads(cumulo_server_url: str) -> None:
    """Readers without seek (the progress counter big uploads go through) upload as before."""
    name = f"ws-{uuid.uuid4().hex[:10]}"
    transport = HttpTransport(cumulo_server_url)
    transport.tracking.create_workspace(name)
    run = Experiment(Workspace.connect(cumulo_server_url, name), "uploads").start_logging()
    counted: list[int] = []
    reader = CountingReader(io.BytesIO(b"x" * 300_000), counted.append)
    assert transport.tracking.upload_artifact(name, run.id, "outputs/model.pkl", reader) == 300_000
    assert sum(counted) == 300_000
    run.complete()


def test_the_transport_goes_on_to_the_next_server_only_when_it_is_safe(
    cumulo_server_url: str,
) -> None:
    name = f"ws-{uuid.uuid4().hex[:10]}"
    refused = f"http://127.0.0.1:{free_port()}"  # nothing listens: never sent
    http = HttpTransport([refused, cumulo_server_url])
    http.tracking.create_workspace(name)  # not repeatable, but the first server never saw it
    assert http.url == cumulo_server_url  # remembered: the next call goes there first
    hangup = Hangup()
    lost_answer = HttpTransport([hangup.url, cumulo_server_url])
    with pytest.raises(Unavailable):  # the first server may have made it: not sent twice
        lost_answer.tracking.create_workspace(f"{name}-twice")
    assert hangup.requests == 1
    assert f"{name}-twice" not in [w.name for w in http.tracking.list_workspaces()]
    assert name in [w.name for w in lost_answer.tracking.list_workspaces()]  # a read goes on
    assert lost_answer.url == cumulo_server_url


LEAVES = """
import os
from cumulo.compute.spool import Spool
spool, run_id = Spool.from_env(), os.environ["RUN"]
metrics = {"key": ["m"] * 3, "value": [1.0, 2.0, 3.0], "step": [0, 1, 2], "timestamp": [1] * 3}
entry = {"workspace": os.environ["WS"], "run_id": run_id, "batch_id": "b" * 32,
         "metrics": metrics, "records": []}
spool.put(entry, 3)  # what the writer leaves when no server answered at exit
spool.note_lost(run_id, 7, "the buffer was full")  # what it had to refuse
"""


def test_the_runner_delivers_what_the_script_left_and_names_what_was_lost(
    tmp_path: Path,
) -> None:
    home, port = tmp_path / "home", free_port()
    server = start_cumulo_server(home, port)
    try:
        _deliver_and_name_the_loss(f"http://127.0.0.1:{port}", tmp_path)
    finally:
        stop_cumulo_server(server)
    # The server that took the final report says so in its log, naming the run.
    warnings = [
        line for line in (home / "server.log").read_text().splitlines() if "WARNING" in line
    ]
    assert any("data lost on the way" in line for line in warnings), warnings


def _deliver_and_name_the_loss(cumulo_server_url: str, tmp_path: Path) -> None:
    name = f"ws-{uuid.uuid4().hex[:10]}"
    HttpTransport(cumulo_server_url).tracking.create_workspace(name)
    ws = Workspace.connect(cumulo_server_url, name)
    run = Experiment(ws, "agent").start_logging()
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "job.py").write_text(LEAVES)
    spec = {
        "run_id": run.id,
        "workspace": name,
        "script": "job.py",
        "env": {"RUN": run.id, "WS": name},
    }
    result = run_job(spec, HttpChannel(cumulo_server_url, None, name, run.id), workdir)
    assert result["status"] == "Completed"
    assert result["error"]["code"] == "MetricsNotDelivered"
    assert "7 metric points could not be delivered" in result["error"]["message"]
    info = HttpTransport(cumulo_server_url).tracking.get_run(name, run.id)
    assert info.status == "Completed" and info.error["undelivered_metric_points"] == 7
    steps = HttpTransport(cumulo_server_url).tracking.get_metric_history(name, run.id, "m")["step"]
    assert steps == [0, 1, 2]
