"""Fixtures that start real things: SQLite files, a PostgreSQL server, an S3 API server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.postgres import local_postgres

from cumulo.services.context import close_all, open_keys

# The local S3 API server takes any credentials; set them for the whole session
# (before any test's environment snapshot, so no test's clean-up removes them).
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets its own CUMULO_HOME and working folder; env and cwd are restored."""
    before = dict(os.environ)
    for key in list(os.environ):
        if key.startswith(("CUMULO_", "MLFLOW_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CUMULO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.chdir(tmp_path)
    # Services opened by wider fixtures (a module's server) keep running for their tests.
    kept = open_keys()
    yield
    _forget_mlflow_state()
    close_all(keep=kept)
    # Libraries set variables behind monkeypatch's back (mlflow.set_experiment does).
    for key in set(os.environ) - set(before):
        del os.environ[key]


def _forget_mlflow_state() -> None:
    """The MLflow client keeps its URI, experiment and runs in module globals: reset them."""
    import sys

    fluent = sys.modules.get("mlflow.tracking.fluent")
    if fluent is None:
        return
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()
    fluent._active_experiment_id = None  # type: ignore[attr-defined]
    mlflow.set_tracking_uri(None)
    sys.modules["mlflow.tracking._model_registry.utils"]._registry_uri = None  # type: ignore[attr-defined]


# ------------------------------------------------------------------ PostgreSQL
@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server from the machine's binaries, in a temporary folder, on a free port."""
    with local_postgres(free_port()) as url:
        try:
            yield url
        finally:
            close_all()


# ------------------------------------------------------------------------ S3
@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's standalone S3 API server on a free port, with a bucket named ``cumulo``."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="cumulo")
    time.sleep(0.1)
    yield endpoint
    server.stop()


# --------------------------------------------------------------- workspaces
# Every SDK test runs against each backend: embedded SQLite + local folder,
# embedded PostgreSQL + S3, and over HTTP to a real `cumulo server` (SQLite).
BACKENDS = ["sqlite", "postgres", "http"]


def start_cumulo_server(
    home: Path, port: int, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`cumulo server` in a subprocess, answering /health; its log is home/server.log."""
    import httpx

    home.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CUMULO_")}
    clean.update(env or {})
    cmd = [sys.executable, "-m", "cumulo.cli.main", "server", "--port", str(port)]
    with open(home / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [*cmd, "--home", str(home), *args], stdout=log, stderr=subprocess.STDOUT, env=clean
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"cumulo server exited: {(home / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"cumulo server did not start: {(home / 'server.log').read_text()[-2000:]}")


def stop_cumulo_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def cumulo_server_url() -> Iterator[str]:
    """One `cumulo server` for the whole session, on a free port and a temporary home."""
    root = Path(tempfile.mkdtemp(prefix="cumulo-server-"))
    port = free_port()
    proc = start_cumulo_server(root / "home", port)
    yield f"http://127.0.0.1:{port}"
    stop_cumulo_server(proc)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def workspace(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from cumulo import Workspace

    name = f"ws-{uuid.uuid4().hex[:10]}"
    if backend == "sqlite":
        return Workspace.create(name)
    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
        endpoint = request.getfixturevalue("s3_endpoint")
        monkeypatch.setenv("CUMULO_S3_ENDPOINT_URL", endpoint)
        return Workspace.create(
            name, database_url=url, artifact_root=f"s3://cumulo/{uuid.uuid4().hex[:8]}"
        )
    if backend == "http":
        from cumulo.sdk.http import HttpTransport

        url = request.getfixturevalue("cumulo_server_url")
        admin = HttpTransport(url)
        admin.tracking.create_workspace(name)
        admin.close()
        return Workspace.connect(url, name)
    raise AssertionError(backend)
