"""Three servers on three "hosts" (network namespaces), one PostgreSQL, one bucket, one balancer.

MLflow clients write through the balancer; every server then answers the same
runs, metrics and artifacts. A server killed with SIGKILL loses no acknowledged
write and the balancer keeps serving through the others. An endpoint's replica
registers its host's address, and the other hosts score it.
"""

from __future__ import annotations

import contextlib
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
        # All three start at once: they open (and migrate) the one database together.
        servers = [
            start_server(host, SERVER_PORT, root / host.name / "home", args, env)
            for host in network.hosts
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
