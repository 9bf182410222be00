"""Several `cumulo server`s on one store, as if on several machines.

Replicas register the address other machines reach (the advertise host); a
job or pool node of another host is judged by its lease and heartbeat, never
by a process id looked up here; an endpoint whose host dies is served again
by another server within seconds.
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
from tests.jobs.conftest import wait_until, write_script
from tests.models.conftest import SCORE_PY, make_script_model

from cumulo import DeploymentConfig, Endpoint, Experiment, InferenceConfig, Model, Workspace
from cumulo.compute import processes
from cumulo.compute.base import host_id
from cumulo.services.context import open_services
from cumulo.services.jobs import JobService
from cumulo.services.scheduler import Scheduler

ELSEWHERE = "10.20.30.40/elsewhere/0"  # the host id of a machine this one is not
# Runs until the file it is given exists.
GATED = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.05)\n"


@pytest.fixture
def scoring_code(tmp_path: Path) -> Path:
    folder = tmp_path / "serve"
    folder.mkdir()
    (folder / "score.py").write_text(SCORE_PY)
    return folder


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The servers a test starts; those still running are stopped after it."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            stop_cumulo_server(proc)


def _deploy(url: str, tmp_path: Path, code: Path) -> Endpoint:
    name = f"ws-{uuid.uuid4().hex[:10]}"
    httpx.post(f"{url}/api/v1/workspaces", json={"name": name}).raise_for_status()
    ws = Workspace.connect(url, name)
    model = Model.register(ws, make_script_model(tmp_path / "model", "v1"), "scaler")
    return Model.deploy(
        ws,
        "scaler",
        [model],
        InferenceConfig(entry_script="score.py", source_directory=code),
        DeploymentConfig(auth="none"),
    )


def _score(uri: str) -> int:
    try:
        return httpx.post(uri, json={"data": [[1, 2]]}, timeout=5).status_code
    except httpx.TransportError:
        return 599


def _gap_after_kill(host: subprocess.Popen[bytes], uri: str, limit_s: float = 60.0) -> float:
    """Seconds from the first failed call after a kill -9 of ``host`` to the next success."""
    assert _score(uri) == 200
    os.kill(host.pid, signal.SIGKILL)
    host.wait()
    killed = time.monotonic()
    first_failure: float | None = None
    while time.monotonic() - killed < limit_s:
        status = _score(uri)
        now = time.monotonic()
        if status != 200 and first_failure is None:
            first_failure = now
        elif status == 200 and first_failure is not None:
            return now - first_failure
        elif status == 200 and now - killed > 5.0:
            return 0.0  # the replicas outlived their server: no gap at all
        time.sleep(0.05)
    raise AssertionError(f"the endpoint did not come back within {limit_s:g} s of the kill")


@pytest.mark.slow
def test_an_endpoint_is_served_again_within_seconds_after_its_host_is_killed(
    postgres_url: str, tmp_path: Path, scoring_code: Path, servers: list[Any]
) -> None:
    store = ["--database-url", postgres_url, "--artifact-root", str(tmp_path / "artifacts")]
    first_port, second_port = free_port(), free_port()
    servers.append(start_cumulo_server(tmp_path / "first", first_port, *store))
    endpoint = _deploy(f"http://127.0.0.1:{first_port}", tmp_path, scoring_code)
    assert endpoint.run({"data": [[1, 2]]})["result"] == [6]
    servers.append(start_cumulo_server(tmp_path / "second", second_port, *store))
    # Through the second server, which routes to the first one's replica.
    uri = endpoint.scoring_uri.replace(f":{first_port}/", f":{second_port}/")
    assert _score(uri) == 200
    # A standby runs a while before a host fails: its replica preloader is warm by then
    # (on a busy machine its imports take seconds just after it starts).
    time.sleep(10.0)
    gap = _gap_after_kill(servers[0], uri)
    print(f"endpoint answered no 200 for {gap:.2f} s after its host was killed")
    assert gap < 5.0


# ------------------------------------------------------------------ job handles
def _services(ws: Workspace) -> Any:
    assert ws._settings is not None
    return open_services(ws._settings)


def _agents_ended() -> None:
    """Every agent this process started has exited."""
    with processes._lock:
        children = list(processes._children.values())
    for proc in children:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            processes.end_groups([proc.pid], grace=2.0)


def _submit_gated(jobs: JobService, ws: Workspace, src: Path, gate: Path) -> str:

    write_script(src, "gated.py", GATED)
    snap = jobs.take_snapshot(ws.name, src)
    config = {"script": "gated.py", "snapshot": snap.hash, "arguments": [str(gate)]}
    return jobs.submit_job(ws.name, Experiment(ws, "hosts").id, config, max_retries_=0).id


def test_a_job_of_another_host_is_judged_by_its_lease_never_by_a_process_id_here(
    tmp_path: Path,
) -> None:
    ws = Workspace.create(f"ws-{uuid.uuid4().hex[:8]}")
    jobs = _services(ws).jobs
    # The job's process runs on this machine, but its handle names another host: a
    # process id found alive here says nothing about it.
    there = Scheduler(_services(ws).jobs, owner="there", lease_seconds=1.0)
    there.host = ELSEWHERE
    here = Scheduler(_services(ws).jobs, owner="here", lease_seconds=1.0)
    gate = tmp_path / "gate"
    try:
        there.start()
        run_id = _submit_gated(jobs, ws, tmp_path / "src", gate)
        wait_until(lambda: jobs.meta.get_run(ws.name, run_id).status == "Running", 60, "Running")
        job = jobs.get_job(ws.name, run_id)
        assert job.handle is not None and job.handle["host"] == ELSEWHERE
        assert processes.alive(int(job.handle["pid"]), job.handle.get("start"))

        here.start()
        time.sleep(3.0)  # three leases: the owner renews it, so nobody takes the job
        assert jobs.get_job(ws.name, run_id).lease_owner == "there"
        assert jobs.meta.get_run(ws.name, run_id).status == "Running"

        there.stop()  # its server stops; the job's agent on that host still renews the lease
        time.sleep(3.0)
        assert jobs.meta.get_run(ws.name, run_id).status == "Running"
        processes.end_groups([int(job.handle["pgid"])], grace=0.0)  # then the host dies
        run = wait_until(
            lambda: (r := jobs.meta.get_run(ws.name, run_id)).status == "Failed" and r,
            30,
            "the job to be taken over and judged lost",
        )
        assert "its host 10.20.30.40 stopped renewing its lease" in run.error["message"]
        assert jobs.get_job(ws.name, run_id).state == "done"
    finally:
        gate.write_text("open")
        there.stop()
        here.stop()
        _agents_ended()


def test_a_pool_node_of_another_host_is_judged_by_its_heartbeat(tmp_path: Path) -> None:
    ws = Workspace.create(f"ws-{uuid.uuid4().hex[:8]}")
    jobs = _services(ws).jobs
    jobs.create_compute_target(ws.name, "pool", "pool", {"max_nodes": 2})
    ended = subprocess.Popen(["true"])
    ended.wait()  # a process id that names no process here
    scheduler = Scheduler(_services(ws).jobs, owner="here")
    for node_id, host in (("there", ELSEWHERE), ("here", scheduler.host)):
        assert jobs.store.add_node(ws.name, "pool", node_id, 2)
        jobs.store.update_node(node_id, pid=ended.pid, host=host)
    try:
        scheduler.tick()
        states = {n.id: n.state for n in jobs.store.list_nodes(ws.name, live_only=False)}
        assert states == {"there": "starting", "here": "stopped"}
    finally:
        scheduler.stop()


def test_the_host_id_names_this_machine_and_its_advertise_host() -> None:
    assert host_id("10.0.0.7").startswith("10.0.0.7/")
    assert host_id(None) == host_id("127.0.0.1") != host_id("127.0.0.2")


# -------------------------------------------------------------------- replicas
@pytest.mark.slow
def test_replicas_register_and_listen_on_the_advertise_address(
    tmp_path: Path, scoring_code: Path, servers: list[Any]
) -> None:
    port = free_port()
    servers.append(
        start_cumulo_server(
            tmp_path / "home", port, "--host", "0.0.0.0", "--advertise-host", "127.0.0.2"
        )
    )
    endpoint = _deploy(f"http://127.0.0.1:{port}", tmp_path, scoring_code)
    replica = endpoint.deployments["blue"].replica_states[0]
    assert replica.url is not None and replica.url.startswith("http://127.0.0.2:")
    assert endpoint.run({"data": [[1, 2]]})["result"] == [6]
    # It listens there only, and refuses calls without the router's secret.
    replica_port = int(replica.url.rsplit(":", 1)[1])
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{replica_port}/health", timeout=5)
    assert httpx.get(f"{replica.url}/health", timeout=5).status_code in (401, 403)
