"""A pool node stops with the server that started it: SIGTERM to ``cumulo server`` lets
the node finish the job at hand, and no queued job starts on it afterwards, even while
another server of the same service still answers (a node stops by itself only once
none does)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server

from cumulo import ComputeTarget, Experiment, LocalPool, ScriptRunConfig, Workspace
from cumulo.core.settings import Settings
from cumulo.services.context import open_services

pytestmark = pytest.mark.slow

Servers = list[tuple[int, "subprocess.Popen[bytes]"]]

WAIT_FOR_GATE = (
    "import os, sys, time\n"
    "while not os.path.exists(sys.argv[1]):\n"
    "    time.sleep(0.05)\n"
    "print('done', flush=True)\n"
)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _wait(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def two_servers() -> Iterator[tuple[Path, Servers]]:
    """Two servers of one service over one store, each naming both addresses."""
    root = Path(tempfile.mkdtemp(prefix="cumulo-shutdown-"))
    home = root / "home"
    Workspace.create("w", home=home)
    ports = [free_port(), free_port()]
    urls = ",".join(f"http://127.0.0.1:{port}" for port in ports)
    procs = [start_cumulo_server(home, port, env={"CUMULO_SERVICE_URLS": urls}) for port in ports]
    try:
        yield home, list(zip(ports, procs, strict=True))
    finally:
        for proc in procs:
            if proc.poll() is None:
                stop_cumulo_server(proc)
        shutil.rmtree(root, ignore_errors=True)


def test_a_pool_node_stops_with_its_server_and_starts_no_queued_job(
    two_servers: tuple[Path, Servers],
) -> None:
    home, servers = two_servers
    first = Workspace.connect(f"http://127.0.0.1:{servers[0][0]}", "w")
    ComputeTarget.create(first, "pool", LocalPool(max_nodes=1, idle_seconds_before_scaledown=60))
    src, gate = home.parent / "src", home.parent / "gate"
    src.mkdir()
    (src / "wait.py").write_text(WAIT_FOR_GATE)
    config = ScriptRunConfig(src, "wait.py", arguments=[str(gate)], compute_target="pool")
    running = Experiment(first, "shutdown").submit(config)
    _wait(lambda: running.refresh().info.status == "Running", what="the first job to run")

    services = open_services(Settings.load(home=home))
    job = services.jobs.get_job("w", running.id)
    node_pid = _parent(int(job.handle["pid"]))  # the node runs the job's script
    started_by = _parent(node_pid)  # either server's scheduler may have started it
    port, proc = next((port, proc) for port, proc in servers if proc.pid == started_by)
    other_port = next(p for p, _ in servers if p != port)

    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    # Queued while the node still runs its job, through the server that still answers.
    second = Workspace.connect(f"http://127.0.0.1:{other_port}", "w")
    queued = Experiment(second, "shutdown").submit(config)
    gate.touch()

    _wait(lambda: not os.path.exists(f"/proc/{node_pid}"), what="the node to stop")
    assert services.tracking.get_run("w", running.id).status == "Completed"
    # The queued job runs, on a node of the server still up: not on the stopped one.
    assert queued.wait_for_completion(show_output=False, timeout=60)["status"] == "Completed"
    assert services.jobs.get_job("w", queued.id).node != job.node
