"""Three servers on three "hosts" (network namespaces), one PostgreSQL, one bucket, one balancer.

MLflow clients write through the balancer; every server then answers the same
runs, metrics and artifacts. A server killed with SIGKILL loses no acknowledged
write and the balancer keeps serving through the others. A job whose server is
killed goes on reporting to another host's server. A pool node started by host 3
runs the jobs queued through host 1. An endpoint's replica registers its host's
address, and the other hosts score it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import free_port
from tests.server.hosts import (
    HostNetwork,
    HostServer,
    RoundRobinProxy,
    namespaces_unavailable,
    shared_postgres,
    shared_s3,
    start_server,
    stop_server,
    wait_healthy,
)

M = "/api/2.0/mlflow"
A = "/api/2.0/mlflow-artifacts/artifacts"
CLI = [sys.executable, "-m", "cumulo.cli.main"]
SERVER_PORT = 8080  # the same port on every host: each has its own network stack


# ------------------------------------------------------------------ the balancer
def _echo_backend(reply: bytes) -> tuple[socket.socket, threading.Thread]:
    """A TCP server on loopback that answers every connection with ``reply`` and closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def loop() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(100)
                conn.sendall(reply)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return listener, thread


def _ask(address: tuple[str, int]) -> bytes:
    with socket.create_connection(address, timeout=5) as conn:
        try:
            conn.sendall(b"hi")
            conn.shutdown(socket.SHUT_WR)
            return conn.recv(100)
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                raise
            return b""  # the balancer closed the connection before answering


def test_the_balancer_takes_turns_and_skips_a_dead_backend() -> None:
    a, _ = _echo_backend(b"a")
    b, _ = _echo_backend(b"b")
    dead = free_port()  # nothing listens there
    backends = [a.getsockname()[:2], ("127.0.0.1", dead), b.getsockname()[:2]]
    proxy = RoundRobinProxy(backends)
    try:
        answers = [_ask(proxy.address) for _ in range(6)]
        # Turns go a, dead, b: the dead one's turn passes to the backend after it.
        assert answers == [b"a", b"b", b"b", b"a", b"b", b"b"]
        assert proxy.connections == [2, 0, 4]
        assert proxy.skipped == [0, 2, 0]
        _close(a)  # a backend dies: the other answers everything
        assert {_ask(proxy.address) for _ in range(4)} == {b"b"}
        _close(b)  # none left: the client's connection is closed, not hung
        assert _ask(proxy.address) == b""
    finally:
        proxy.close()
        _close(a)
        _close(b)


def _close(listener: socket.socket) -> None:
    """Stop listening now (a thread blocked in accept() would otherwise keep it open)."""
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    listener.close()


# ---------------------------------------------------------------- three hosts
@dataclass
class Cluster:
    network: HostNetwork
    servers: list[HostServer]
    balancer: RoundRobinProxy
    database_url: str
    s3_endpoint: str
    token: str

    def client(self, url: str) -> httpx.Client:
        # No kept-alive connections: every request is a new connection, so the
        # balancer spreads requests (not just clients) over the servers.
        return httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {self.token}"},
            limits=httpx.Limits(max_keepalive_connections=0),
            timeout=30,
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reason = namespaces_unavailable()
    if reason:
        pytest.skip(f"multi-host test needs network namespaces: {reason}")
    root = tmp_path_factory.mktemp("hosts")
    with contextlib.ExitStack() as stack:
        network = stack.enter_context(HostNetwork(3))
        gateway = network.gateway
        pg = stack.enter_context(shared_postgres(gateway, f"{network.prefix}.0/24", free_port()))
        s3 = stack.enter_context(shared_s3(gateway, free_port()))
        token = _create_token(pg, root / "admin")
        env = {
            "CUMULO_S3_ENDPOINT_URL": s3,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        args = ["--database-url", pg, "--artifact-root", "s3://cumulo/team", "--auth", "token"]
        urls = [f"http://{host.address}:{SERVER_PORT}" for host in network.hosts]
        # All three start at once: they open (and migrate) the one database together.
        # Jobs report to every server, their own host's first (CUMULO_SERVICE_URLS).
        servers = [
            start_server(
                host,
                SERVER_PORT,
                root / host.name / "home",
                args,
                {**env, "CUMULO_SERVICE_URLS": ",".join(urls[i:] + urls[:i])},
            )
            for i, host in enumerate(network.hosts)
        ]
        stack.callback(lambda: [stop_server(s) for s in servers])  # the list, as it is then
        wait_healthy(servers)
        backends = [(s.host.address, s.port) for s in servers]
        balancer = RoundRobinProxy(backends, host=gateway)
        stack.callback(balancer.close)
        yield Cluster(network, servers, balancer, pg, s3, token)  # servers: the same list


def _create_token(database_url: str, home: Path) -> str:
    """An owner token for every workspace, made once with the CLI against the shared database."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CUMULO_")}
    where = ["--home", str(home), "--database-url", database_url]
    made = subprocess.run(
        [*CLI, "token", "create", "--workspace", "*", "--role", "owner", *where],
        capture_output=True,
        text=True,
        env=clean,
        check=True,
        timeout=120,
    )
    return made.stdout.strip().splitlines()[-1]


def _ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, (response.request.url, response.text[:500])
    return response.json() if response.content else {}


def _history(client: httpx.Client, run_id: str, key: str) -> list[dict]:
    body = _ok(client.get(M + "/metrics/get-history", params={"run_id": run_id, "metric_key": key}))
    return sorted(body.get("metrics", []), key=lambda m: m["step"])


def _search(client: httpx.Client, experiment_id: str) -> list[dict]:
    body = {"experiment_ids": [experiment_id], "max_results": 1000}
    runs = _ok(client.post(M + "/runs/search", json=body)).get("runs", [])
    return sorted(runs, key=lambda r: r["info"]["run_id"])


pytestmark = pytest.mark.slow

RUNS, BATCHES, POINTS_PER_BATCH = 6, 4, 250


def test_every_server_answers_what_was_written_through_the_balancer(cluster: Cluster) -> None:
    with cluster.client(cluster.balancer.url) as lb:
        name = f"multi-{uuid.uuid4().hex[:8]}"
        experiment_id = _ok(lb.post(M + "/experiments/create", json={"name": name}))[
            "experiment_id"
        ]
        run_ids = []
        for r in range(RUNS):
            created = _ok(
                lb.post(
                    M + "/runs/create",
                    json={"experiment_id": experiment_id, "run_name": f"r{r}", "start_time": 1},
                )
            )
            run_ids.append(created["run"]["info"]["run_id"])
        assert len(set(run_ids)) == RUNS
        for run_id in run_ids:
            _ok(
                lb.post(
                    M + "/runs/log-parameter", json={"run_id": run_id, "key": "lr", "value": "0.1"}
                )
            )
            for b in range(BATCHES):
                steps = range(b * POINTS_PER_BATCH, (b + 1) * POINTS_PER_BATCH)
                metrics = [
                    {"key": "loss", "value": 1 / (s + 1), "timestamp": 1000 + s, "step": s}
                    for s in steps
                ]
                _ok(lb.post(M + "/runs/log-batch", json={"run_id": run_id, "metrics": metrics}))
            content = f"weights of {run_id}".encode() * 1000
            _ok(lb.put(f"{A}/default/runs/{run_id}/model/weights.bin", content=content))
            _ok(
                lb.post(
                    M + "/runs/update", json={"run_id": run_id, "status": "FINISHED", "end_time": 2}
                )
            )
    # The balancer spread the work over all three servers.
    assert all(n > 0 for n in cluster.balancer.connections), cluster.balancer.connections

    answers = []
    for server in cluster.servers:
        with cluster.client(server.url) as direct:
            runs = _search(direct, experiment_id)
            assert [r["info"]["run_id"] for r in runs] == sorted(run_ids), server.url
            histories = {run_id: _history(direct, run_id, "loss") for run_id in run_ids}
            for history in histories.values():
                assert [m["step"] for m in history] == list(range(BATCHES * POINTS_PER_BATCH))
            files = {
                run_id: direct.get(f"{A}/default/runs/{run_id}/model/weights.bin").content
                for run_id in run_ids
            }
            for run_id, content in files.items():
                assert content == f"weights of {run_id}".encode() * 1000, server.url
            answers.append((runs, histories, files))
    assert answers[0] == answers[1] == answers[2]  # the same data, byte for byte


def test_a_server_killed_behind_the_balancer_loses_no_acknowledged_write(
    cluster: Cluster,
) -> None:
    alive = [s for s in cluster.servers if s.proc.poll() is None]
    assert len(alive) == 3
    with cluster.client(cluster.balancer.url) as lb:
        experiment_id = _ok(
            lb.post(M + "/experiments/create", json={"name": f"kill-{uuid.uuid4().hex[:8]}"})
        )["experiment_id"]
        run_id = _ok(lb.post(M + "/runs/create", json={"experiment_id": experiment_id}))["run"][
            "info"
        ]["run_id"]

    acknowledged: list[int] = []  # steps of batches the servers answered 200 to
    attempted: list[int] = []
    errors: list[str] = []
    stop = threading.Event()
    batch = 20

    def writer(first: int, stride: int) -> None:
        """Log batches through the balancer; a failed batch is sent again (as a client would)."""
        with cluster.client(cluster.balancer.url) as client:
            b = first
            deadline = time.monotonic() + 90
            while not stop.is_set() and time.monotonic() < deadline:
                steps = list(range(b * batch, (b + 1) * batch))
                attempted.extend(steps)
                metrics = [
                    {"key": "loss", "value": float(s), "timestamp": 1000 + s, "step": s}
                    for s in steps
                ]
                try:
                    response = client.post(
                        M + "/runs/log-batch", json={"run_id": run_id, "metrics": metrics}
                    )
                except httpx.TransportError as exc:
                    errors.append(type(exc).__name__)
                    continue  # the same batch again, on another connection
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text[:200]}")
                    continue
                acknowledged.extend(steps)
                b += stride

    writers = [threading.Thread(target=writer, args=(i, 4)) for i in range(4)]
    for thread in writers:
        thread.start()
    try:
        _wait_for(lambda: len(acknowledged) >= 40 * batch, 60)
        victim = cluster.servers[0]
        before_kill = len(acknowledged)
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        skipped_before = cluster.balancer.skipped[0]
        _wait_for(lambda: len(acknowledged) >= before_kill + 60 * batch, 60)
    finally:
        stop.set()
        for thread in writers:
            thread.join(timeout=60)
    assert len(acknowledged) >= before_kill + 60 * batch  # kept serving through the others
    assert cluster.balancer.skipped[0] > skipped_before  # the dead one was passed over
    # A batch in flight on the killed server may fail; only transport errors are allowed.
    assert all(e in ("RemoteProtocolError", "ReadError", "ConnectError") for e in errors), errors

    # The killed server comes back on its own home and answers the same.
    cluster.servers[0] = restarted = start_server(
        victim.host, victim.port, victim.home, victim.args, victim.env
    )
    wait_healthy([restarted])
    seen = []
    for server in cluster.servers:
        with cluster.client(server.url) as direct:
            steps = [m["step"] for m in _history(direct, run_id, "loss")]
        assert set(acknowledged) <= set(steps), server.url  # nothing acknowledged was lost
        assert set(steps) <= set(attempted)
        seen.append(steps)
    assert seen[0] == seen[1] == seen[2]


def _wait_for(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


# ------------------------------------------------------------ jobs across hosts
TICKS = 60  # one point and one line every 0.1 s: about 6 s

TICKING = """
import sys, time
from cumulo import Run
run = Run.get_context()
for step in range(int(sys.argv[1])):
    run.log("tick", float(step), step=step)
    print("tick", step, flush=True)
    time.sleep(0.1)
"""


def _until(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    """``condition()``'s first true value, polled until ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _new_workspace(cluster: Cluster, server: HostServer, tmp_path: Path) -> tuple[str, Path]:
    """A fresh workspace (made through ``server``) and a source folder holding ticks.py."""
    name = f"ws-{uuid.uuid4().hex[:8]}"
    with cluster.client(server.url) as direct:
        direct.post("/api/v1/workspaces", json={"name": name}).raise_for_status()
    src = tmp_path / "src"
    src.mkdir()
    (src / "ticks.py").write_text(TICKING)
    return name, src


def _steps(cluster: Cluster, server: HostServer, workspace: str, run_id: str) -> list[int]:
    from cumulo.sdk.http import HttpTransport

    http = HttpTransport(server.url, token=cluster.token, timeout=10)
    try:
        return list(http.tracking.get_metric_history(workspace, run_id, "tick")["step"])
    except Exception:  # not there yet
        return []
    finally:
        http.close()


def _ended(cluster: Cluster, server: HostServer, workspace: str, run_id: str) -> Any:
    from cumulo.sdk.http import HttpTransport

    http = HttpTransport(server.url, token=cluster.token, timeout=10)
    try:
        run = http.tracking.get_run(workspace, run_id)
    finally:
        http.close()
    return run if run.status in ("Completed", "Failed", "Canceled") else None


def _printed(cluster: Cluster, server: HostServer, workspace: str, run_id: str) -> list[str]:
    with cluster.client(server.url) as direct:
        logs = _ok(
            direct.get(f"/api/v1/workspaces/{workspace}/jobs/{run_id}/logs", params={"limit": 5000})
        )
    text = "".join(chunk["text"] for chunk in logs["chunks"])
    return [line for line in text.splitlines() if line.startswith("tick ")]


def _job_pid(server: HostServer, run_id: str) -> int:
    """The pid of a job's script, from the folder its agent runs in on ``server``'s host."""
    for child in server.home.glob("jobs/**/child.json"):
        if run_id in str(child):
            return int(json.loads(child.read_text())["pid"])
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _restart(cluster: Cluster, which: int) -> None:
    """Start server ``which`` again on its own home, as it was started."""
    old = cluster.servers[which]
    if old.proc.poll() is None:
        stop_server(old)
    cluster.servers[which] = new = start_server(old.host, old.port, old.home, old.args, old.env)
    wait_healthy([new])


def test_a_job_keeps_reporting_through_another_host_when_its_server_is_killed(
    cluster: Cluster, tmp_path: Path
) -> None:
    from cumulo import Experiment, ScriptRunConfig, Workspace

    first = cluster.servers[0]
    assert all(s.proc.poll() is None for s in cluster.servers)
    workspace, src = _new_workspace(cluster, first, tmp_path)
    ws = Workspace.connect(first.url, workspace, token=cluster.token)
    run = Experiment(ws, "failover").submit(
        ScriptRunConfig(src, "ticks.py", arguments=[str(TICKS)])
    )
    # Whichever server's scheduler leased the job runs it as its child (in a session
    # of its own); it is usually the one that took the submission, but any may win.
    # Once about 2 s of points are in, that server dies without a word.
    _until(lambda: len(_steps(cluster, first, workspace, run.id)) >= 20, 90, "first points")
    launcher = next(i for i, s in enumerate(cluster.servers) if _job_pid(s, run.id))
    victim = cluster.servers[launcher]
    others = [s for i, s in enumerate(cluster.servers) if i != launcher]
    pid = _job_pid(victim, run.id)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    try:
        logged_before = len(_steps(cluster, others[0], workspace, run.id))
        assert pid and _alive(pid), "the job died with the server that launched it"
        assert logged_before < TICKS - 20  # most of the job is still to come
        # Its script fails over to another host's server over the subnet; its agent
        # writes status and output straight to the shared database. It ends well inside
        # the lease (15 s): the other hosts would otherwise take it over and, unable to
        # look at the dead server's processes, give it up as lost.
        ended = _until(lambda: _ended(cluster, others[0], workspace, run.id), 60, "the job to end")
        assert ended.status == "Completed", ended.error
        assert ended.error is None
        for server in others:
            assert sorted(_steps(cluster, server, workspace, run.id)) == list(range(TICKS))
            assert _printed(cluster, server, workspace, run.id) == [
                f"tick {step}" for step in range(TICKS)
            ]
    finally:
        _restart(cluster, launcher)


def _query(cluster: Cluster, sql: str, **params: Any) -> list[Any]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(cluster.database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sqlalchemy.text(sql), params).all())
    finally:
        engine.dispose()


def test_a_pool_node_on_host_3_runs_jobs_queued_through_host_1(
    cluster: Cluster, tmp_path: Path
) -> None:
    from cumulo import ComputeTarget, Experiment, LocalPool, ScriptRunConfig, Workspace

    first, second, third = cluster.servers
    assert all(s.proc.poll() is None for s in cluster.servers)
    workspace, src = _new_workspace(cluster, first, tmp_path)
    ws1 = Workspace.connect(first.url, workspace, token=cluster.token)
    # A pool of one node that idles a minute before it stops: once host 3 has
    # started that node, no other host can start one, and every job of the pool
    # runs there.
    pool = ComputeTarget.create(
        ws1, "pool", LocalPool(max_nodes=1, idle_seconds_before_scaledown=60)
    )
    config = ScriptRunConfig(src, "ticks.py", arguments=["5"], compute_target="pool")
    # Every server's scheduler scales every pool; hosts 1 and 2 are frozen while
    # host 3's scheduler starts the node for a first job queued through host 3.
    first.pause()
    second.pause()
    try:
        ws3 = Workspace.connect(third.url, workspace, token=cluster.token)
        opener = Experiment(ws3, "pool").submit(config)
        _until(lambda: _ended(cluster, third, workspace, opener.id), 60, "the first pool job")
    finally:
        first.resume()
        second.resume()
    queued = [Experiment(ws1, "pool").submit(config) for _ in range(3)]
    try:
        for run in [opener, *queued]:
            ended = _until(lambda r=run: _ended(cluster, second, workspace, r.id), 60, "a pool job")
            assert ended.status == "Completed", ended.error
            assert _steps(cluster, second, workspace, run.id) == [0, 1, 2, 3, 4]
            assert _printed(cluster, first, workspace, run.id) == [f"tick {i}" for i in range(5)]
        nodes = _query(
            cluster,
            "SELECT n.id, n.host FROM pool_nodes n JOIN workspaces w ON w.id = n.workspace_id "
            "WHERE w.name = :ws AND n.target = 'pool'",
            ws=workspace,
        )
        # One node, on host 3: the host it records is host 3's advertise address.
        assert len(nodes) == 1, nodes
        node_id, host = nodes[0]
        assert host.startswith(f"{third.host.address}/"), host
        jobs = _query(
            cluster,
            "SELECT run_id, node, handle FROM jobs WHERE run_id = ANY(:ids)",
            ids=[run.id for run in [opener, *queued]],
        )
        assert len(jobs) == 4
        for run_id, node, handle in jobs:
            assert node == node_id, run_id
            assert json.loads(handle)["host"] == host, run_id
    finally:
        pool.delete()  # its node sees the pool gone and stops


def test_an_endpoint_hosted_on_one_host_is_scored_through_another(
    cluster: Cluster, tmp_path: Path
) -> None:
    from tests.models.conftest import SCORE_PY, make_script_model

    from cumulo import DeploymentConfig, InferenceConfig, Model, Workspace

    live = [s for s in cluster.servers if s.proc.poll() is None]
    name = f"ws-{uuid.uuid4().hex[:8]}"
    with cluster.client(live[1].url) as direct:
        direct.post("/api/v1/workspaces", json={"name": name}).raise_for_status()
    code = tmp_path / "serve"
    code.mkdir()
    (code / "score.py").write_text(SCORE_PY)
    ws = Workspace.connect(live[1].url, name, token=cluster.token)
    model = Model.register(ws, make_script_model(tmp_path / "model", "v1"), "scaler")
    endpoint = Model.deploy(
        ws,
        "scaler",
        [model],
        InferenceConfig(entry_script="score.py", source_directory=code),
        DeploymentConfig(auth="none"),
    )
    replica = endpoint.deployments["blue"].replica_states[0]
    assert replica.url is not None
    # The replica registered its host's address, which the other hosts reach.
    hosting = next(s for s in live if replica.url.startswith(f"http://{s.host.address}:"))
    for server in live:
        if server is hosting:
            continue
        uri = endpoint.scoring_uri.replace(live[1].url, server.url)
        answer = httpx.post(uri, json={"data": [[1, 2]]}, timeout=30)
        assert answer.status_code == 200, (server.url, answer.text[:300])
        assert answer.json()["result"] == [6]
