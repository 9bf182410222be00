"""A local job's agent keeps its job's lease; a pool node looks at every server.

Two `cumulo server`s share one PostgreSQL, with short leases and different
advertise hosts, so each sees the other's job handles as another machine's:
the one that survives cannot look at the process of the one it replaces.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server
from tests.jobs.conftest import wait_until

from cumulo import Experiment, ScriptRunConfig, Workspace
from cumulo.core.settings import Settings
from cumulo.sdk.http import HttpTransport
from cumulo.services.agent_link import ServiceNodeQueue, node_endpoint
from cumulo.services.context import open_services
from cumulo.services.scheduler import Endpoint

HOSTS = ["127.0.0.1", "127.0.0.2"]  # two machines, as the servers' host ids tell
RUNS_S = 10.0  # five leases of 2 s
SCRIPT = """
import sys, time
with open(sys.argv[1], "a") as fh:
    fh.write("started\\n")
time.sleep(float(sys.argv[2]))
"""


class Servers:
    def __init__(self, postgres_url: str, root: Path) -> None:
        self.ports = [free_port(), free_port()]
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        self.homes = [root / "first", root / "second"]
        self.store = ["--database-url", postgres_url, "--artifact-root", str(root / "artifacts")]
        self.env = {"CUMULO_SERVICE_URLS": ",".join(self.urls), "CUMULO_LEASE_SECONDS": "2"}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for home, port, host in zip(self.homes, self.ports, HOSTS, strict=True):
            args = [*self.store, "--advertise-host", host]
            self.procs.append(start_cumulo_server(home, port, *args, env=self.env))

    def launcher(self, workspace: str, run_id: str) -> int:
        """Which server launched the job: the one whose home holds its folder."""
        for which, home in enumerate(self.homes):
            if (home / "jobs" / workspace / f"{run_id}-1").exists():
                return which
        return -1

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                stop_cumulo_server(proc)


@pytest.fixture
def servers(postgres_url: str, tmp_path: Path) -> Iterator[Servers]:
    both = Servers(postgres_url, tmp_path)
    try:
        both.start()
        yield both
    finally:
        both.stop()


def _ended(url: str, workspace: str, run_id: str) -> Any:
    run = HttpTransport(url).tracking.get_run(workspace, run_id)
    return run if run.status in ("Completed", "Failed", "Canceled") else None


@pytest.mark.slow
def test_a_local_job_outlives_its_server_while_its_agent_renews_the_lease(
    servers: Servers, tmp_path: Path
) -> None:
    workspace = f"ws-{uuid.uuid4().hex[:10]}"
    HttpTransport(servers.urls[0]).tracking.create_workspace(workspace)
    src, starts = tmp_path / "src", tmp_path / "starts.txt"
    src.mkdir()
    (src / "sleeps.py").write_text(SCRIPT)
    ws = Workspace.connect(servers.urls[0], workspace)
    config = ScriptRunConfig(src, "sleeps.py", arguments=[str(starts), str(RUNS_S)])
    run_id = Experiment(ws, "lease").submit(config).id

    wait_until(lambda: starts.exists(), 90, "the script to start")
    which = wait_until(
        lambda: servers.launcher(workspace, run_id) + 1, 30, "the launcher's job folder"
    )
    launcher = servers.procs[which - 1]
    survivor = servers.urls[2 - which]
    time.sleep(1.0)
    launcher.send_signal(signal.SIGKILL)  # no shutdown: its lease renewals stop here
    launcher.wait()
    killed = time.monotonic()

    run = wait_until(lambda: _ended(survivor, workspace, run_id), 120, "the job to end")
    assert run.status == "Completed", run.error
    assert run.error is None
    history = [change.status for change in run.status_history]
    assert "Failed" not in history and history.count("Queued") == 1, history
    assert starts.read_text().splitlines() == ["started"]  # never run a second time
    # It ran on for several leases after its server was gone.
    assert time.monotonic() - killed > 3 * 2.0
    log = (servers.homes[2 - which] / "server.log").read_text(errors="replace")
    assert "was lost" not in log


def test_a_pool_node_stops_only_when_no_server_of_the_service_answers(
    ws: Workspace, cumulo_server_url: str
) -> None:
    assert ws._settings is not None
    jobs = open_services(ws._settings).jobs
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]

    def gone(*urls: str) -> bool:
        endpoint = Endpoint(urls[0], urls=urls)
        return ServiceNodeQueue(jobs, ws.name, "pool", "node", endpoint).server_gone()

    assert not gone(dead[0], cumulo_server_url)  # the first address is down, not the service
    assert not gone(cumulo_server_url, dead[0])
    assert gone(*dead)


def test_a_pool_node_knows_every_address_of_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUMULO_URL", "http://a:1")
    monkeypatch.setenv("CUMULO_URLS", "http://a:1, http://b:2/")
    endpoint = node_endpoint(Settings.load())
    assert endpoint.url == "http://a:1"
    assert endpoint.urls == ("http://a:1", "http://b:2")
