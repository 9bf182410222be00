"""`cumulo server` itself: several workers, the loud warning, TCP_NODELAY."""

from __future__ import annotations

import io
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server

from cumulo import Workspace
from cumulo.core.settings import Settings
from cumulo.sdk.http import HttpTransport
from cumulo.sdk.workspace import Experiment
from cumulo.server.serve import set_nodelay, worker_config

CLI = [sys.executable, "-m", "cumulo.cli.main", "server"]


def _nodelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_nodelay_is_set_on_connections_of_a_socket_bound_like_uvicorn_workers() -> None:
    # uvicorn's multi-worker socket: protocol number 0, so asyncio skips TCP_NODELAY.
    listener = socket.socket(family=socket.AF_INET)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    with listener, socket.create_connection(listener.getsockname()) as client:
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.proto == 0 and _nodelay(accepted) == 0
            set_nodelay(accepted)
            assert _nodelay(accepted) == 1
        assert client  # the client side is the SDK's, which sets it itself


def test_settings_reach_workers_with_their_configuration(tmp_path: Path) -> None:
    settings = Settings.load(home=tmp_path, auth="token", max_request_bytes=1234, lease_seconds=2.5)
    before = dict(os.environ)
    config = worker_config(settings, host="127.0.0.1", port=free_port(), workers=2)
    # What a worker process receives: the configuration, pickled by uvicorn.
    shipped = pickle.loads(pickle.dumps(config))
    app = shipped.app()
    assert shipped.factory and app.state.settings == settings
    assert app.state.services.scheduler.jobs.settings.lease_seconds == 2.5
    assert dict(os.environ) == before  # nothing is passed through this process's environment


@pytest.mark.slow
def test_several_workers_serve_one_store_side_by_side(tmp_path: Path) -> None:
    port = free_port()
    server = start_cumulo_server(tmp_path / "home", port, "--workers", "2")
    url = f"http://127.0.0.1:{port}"
    try:
        HttpTransport(url).tracking.create_workspace("shared")
        workspace = Workspace.connect(url, "shared")
        runs = [Experiment(workspace, "many").start_logging() for _ in range(6)]
        for run in runs:
            for step in range(2000):
                run.log("m", float(step), step=step)
        workspace.flush(timeout=120)
        # Fresh connections land on either worker; every one sees the same store.
        for run in runs:
            with httpx.Client() as fresh:
                path = f"/api/v1/workspaces/shared/runs/{run.id}/metrics/history"
                got = fresh.get(url + path, params={"key": "m"}).json()
            assert got["step"] == list(range(2000))
        assert len(list(Experiment(workspace, "many").get_runs())) == 6
    finally:
        stop_cumulo_server(server)


@pytest.mark.slow
def test_a_non_loopback_address_without_auth_prints_a_loud_warning(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "--host", "0.0.0.0", "--port", str(port), "--home", str(tmp_path / "home")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "WARNING" in err.decode() and "--auth token" in err.decode()


def test_loopback_and_token_auth_need_no_warning(tmp_path: Path) -> None:
    from cumulo.cli.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")


@pytest.mark.slow
def test_start_with_a_stopped_and_restarted_server_keeps_data(tmp_path: Path) -> None:
    port, home = free_port(), tmp_path / "home"
    server = start_cumulo_server(home, port)
    url = f"http://127.0.0.1:{port}"
    HttpTransport(url).tracking.create_workspace("kept")
    stop_cumulo_server(server)
    server = start_cumulo_server(home, port)
    try:
        names = [w.name for w in HttpTransport(url).tracking.list_workspaces()]
        assert names == ["default", "kept"]
    finally:
        stop_cumulo_server(server)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_servers_share_one_postgresql(postgres_url: str, tmp_path: Path) -> None:
    import uuid

    # Both start at once: migrations and the default workspace must not collide.
    ports = [free_port(), free_port()]
    shared = ["--database-url", postgres_url, "--artifact-root", str(tmp_path / "artifacts")]
    servers = [start_cumulo_server(tmp_path / f"home{i}", p, *shared) for i, p in enumerate(ports)]
    try:
        a, b = (HttpTransport(f"http://127.0.0.1:{p}") for p in ports)
        name = f"pg-{uuid.uuid4().hex[:6]}"
        a.tracking.create_workspace(name)
        run = a.tracking.create_run(name, a.tracking.get_or_create_experiment(name, "e").id)
        b.tracking.log_batch(name, run.id, metrics=[("m", 1.0, 0, 1)], batch_id="one")
        assert (
            a.tracking.log_batch(name, run.id, metrics=[("m", 1.0, 0, 1)], batch_id="one") is False
        )
        b.tracking.upload_artifact(name, run.id, "f.txt", io.BytesIO(b"hello"))
        with a.tracking.open_artifact(name, run.id, "f.txt") as fh:
            assert fh.read() == b"hello"
        assert a.tracking.get_metric_history(name, run.id, "m")["step"] == [0]
        assert "default" in [w.name for w in b.tracking.list_workspaces()]
    finally:
        for server in servers:
            stop_cumulo_server(server)
