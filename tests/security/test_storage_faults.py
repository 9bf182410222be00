"""Storage faults and size limits while uploads stream.

A real ``cumulo server`` keeps its artifacts on a small filesystem the test
mounts (tmpfs, so it needs root) and fills: every kind of upload must answer
507 with the reason, leave no partial file behind, and work again once space
is freed; the server keeps answering throughout. Size limits of model
archives, endpoint code and code snapshots are enforced as the bytes arrive:
a body still being sent is refused (413) as soon as it passes the limit.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server

from cumulo.core.settings import Settings
from cumulo.server.api import jobs as jobs_api
from cumulo.server.api import models as models_api
from cumulo.server.app import create_app
from cumulo.services import deployments

BIG = 512 * 1024  # bigger than anything a full filesystem has room for
SMALL = 1024


# ------------------------------------------------------------- a small disk
def _mount_small_fs(where: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")


def _unmount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(disk: Path) -> None:
    """Write a filler file until the filesystem has no room left."""
    with open(disk / "filler", "ab", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
    assert os.statvfs(disk).f_bavail == 0


def _free(disk: Path) -> None:
    (disk / "filler").unlink(missing_ok=True)


def _contents(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# --------------------------------------------------------------- payloads
def _zip(size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("score.py", os.urandom(size))  # random: the zip cannot shrink it
    return buf.getvalue()


def _tar_gz(size: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = os.urandom(size)
        info = tarfile.TarInfo("model.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Server:
    base: str
    run_id: str
    disk: Path

    @property
    def api(self) -> str:
        return f"{self.base}/api/v1/workspaces/default"


Upload = Callable[[Server, int], httpx.Response]


def _native(server: Server, size: int) -> httpx.Response:
    url = f"{server.api}/runs/{server.run_id}/artifacts/outputs/deep/file.bin"
    return httpx.put(url, content=os.urandom(size), timeout=60)


def _mlflow(server: Server, size: int) -> httpx.Response:
    url = (
        f"{server.base}/api/2.0/mlflow-artifacts/artifacts/default/runs/"
        f"{server.run_id}/outputs/mlflow.bin"
    )
    return httpx.put(url, content=os.urandom(size), timeout=60)


def _snapshot(server: Server, size: int) -> httpx.Response:
    return httpx.put(f"{server.api}/snapshots", content=_zip(size), timeout=60)


def _model(server: Server, size: int) -> httpx.Response:
    url = f"{server.api}/models/full-disk-model/artifacts/model.tar.gz"
    return httpx.put(url, content=_tar_gz(size), timeout=60)


def _endpoint_code(server: Server, size: int) -> httpx.Response:
    url = f"{server.api}/endpoints/scorer/artifacts/code.zip"
    return httpx.put(url, content=_zip(size), timeout=60)


UPLOADS: dict[str, Upload] = {
    "native artifact": _native,
    "mlflow artifact proxy": _mlflow,
    "code snapshot": _snapshot,
    "model version archive": _model,
    "endpoint code": _endpoint_code,
}


@pytest.fixture(scope="module")
def artifacts_on_small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose artifact root is on a 2 MiB filesystem (its database is not)."""
    root = tmp_path_factory.mktemp("storage-faults")
    disk = root / "disk"
    _mount_small_fs(disk)
    port = free_port()
    proc = start_cumulo_server(root / "home", port, "--artifact-root", str(disk / "artifacts"))
    try:
        base = f"http://127.0.0.1:{port}"
        api = f"{base}/api/v1/workspaces/default"
        experiment = httpx.post(f"{api}/experiments", json={"name": "full-disk"}).json()
        run = httpx.post(f"{api}/runs", json={"experiment_id": experiment["id"]}).json()
        created = httpx.post(f"{api}/endpoints", json={"name": "scorer"})
        assert created.status_code == 201, created.text
        yield Server(base, run["id"], disk)
    finally:
        stop_cumulo_server(proc)
        _unmount(disk)


@pytest.mark.parametrize("kind", list(UPLOADS))
def test_an_upload_to_a_full_disk_answers_507_and_leaves_nothing(
    artifacts_on_small_disk: Server, kind: str
) -> None:
    server, upload = artifacts_on_small_disk, UPLOADS[kind]
    before = _contents(server.disk / "artifacts")
    _fill(server.disk)
    try:
        refused = upload(server, BIG)
        assert refused.status_code == 507, refused.text
        body = refused.json()
        assert body["error_code"] == "INSUFFICIENT_STORAGE"
        assert "storage is full" in body["message"]
        # Nothing partial: no file or folder appeared under the artifact root.
        assert _contents(server.disk / "artifacts") == before
        assert httpx.get(f"{server.base}/health").status_code == 200
    finally:
        _free(server.disk)
    again = upload(server, SMALL)
    assert again.status_code in (200, 201), again.text


def test_a_full_disk_under_the_database_answers_clearly_and_recovers(tmp_path: Path) -> None:
    """Log appends go to the metadata database: when its disk is full they fail cleanly."""
    disk = tmp_path / "disk"
    _mount_small_fs(disk)
    port = free_port()
    proc = None
    try:
        proc = start_cumulo_server(disk / "home", port)
        api = f"http://127.0.0.1:{port}/api/v1/workspaces/default"
        experiment = httpx.post(f"{api}/experiments", json={"name": "logs"}).json()
        run_id = httpx.post(f"{api}/runs", json={"experiment_id": experiment["id"]}).json()["id"]
        chunks = {"chunks": [["stdout", "x" * 200_000, None]] * 4}
        _fill(disk)
        refused = httpx.post(f"{api}/jobs/{run_id}/logs", json=chunks, timeout=60)
        assert refused.status_code in (503, 507), refused.text
        assert refused.json()["error_code"] in ("TEMPORARILY_UNAVAILABLE", "INSUFFICIENT_STORAGE")
        assert "full" in refused.json()["message"]
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
        _free(disk)
        small = {"chunks": [["stdout", "hello\n", None]]}
        assert httpx.post(f"{api}/jobs/{run_id}/logs", json=small).status_code == 200
    finally:
        if proc is not None:
            stop_cumulo_server(proc)
        _unmount(disk)


# ------------------------------------------------------------ size limits
LIMIT = 64 * 1024


@pytest.fixture
def small_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, Path]]:
    """A live in-process server whose upload limits are 64 KiB; its temp folder is ours."""
    monkeypatch.setattr(models_api, "MAX_MODEL_UPLOAD_BYTES", LIMIT)
    monkeypatch.setattr(deployments, "MAX_CODE_BYTES", LIMIT)
    monkeypatch.setattr(jobs_api, "MAX_SNAPSHOT_UPLOAD", LIMIT)
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    app = create_app(Settings.load(home=tmp_path / "home"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    created = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/workspaces/default/endpoints", json={"name": "scorer"}
    )
    assert created.status_code == 201, created.text
    try:
        yield port, spool
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _send_without_finishing(port: int, path: str, size: int) -> bytes:
    """Send ``size`` bytes of a chunked body and never end it; the answer must come anyway."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(
            f"PUT {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        piece = os.urandom(16 * 1024)
        for _ in range(size // len(piece)):
            sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        try:
            answer = sock.recv(65536)
        except TimeoutError:
            pytest.fail("the server waited for the whole body instead of refusing it")
        return answer


OVERSIZED = {
    "model version archive": "/api/v1/workspaces/default/models/big/artifacts/model.tar.gz",
    "endpoint code": "/api/v1/workspaces/default/endpoints/scorer/artifacts/code.zip",
    "code snapshot": "/api/v1/workspaces/default/snapshots",
}


@pytest.mark.parametrize("kind", list(OVERSIZED))
def test_an_oversized_upload_is_refused_while_it_streams(
    small_limits: tuple[int, Path], kind: str
) -> None:
    port, spool = small_limits
    answer = _send_without_finishing(port, OVERSIZED[kind], 4 * LIMIT)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"PAYLOAD_TOO_LARGE" in answer
    assert b"larger than the limit" in answer
    # Nothing was kept: no temporary file, no version, no stored code or snapshot.
    time.sleep(0.2)  # the handler's clean-up runs as it unwinds
    assert list(spool.iterdir()) == []
    api = f"http://127.0.0.1:{port}/api/v1/workspaces/default"
    assert httpx.get(f"{api}/model-versions", params={"name": "big"}).json()["versions"] == []
    assert httpx.get(f"{api}/snapshots").json()["snapshots"] == []
    assert not any((spool.parent / "home" / "artifacts").rglob("*.zip"))


def test_a_declared_oversized_upload_is_refused_before_it_is_read(
    small_limits: tuple[int, Path],
) -> None:
    port, spool = small_limits
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(
            f"PUT {OVERSIZED['model version archive']} HTTP/1.1\r\nHost: x\r\n"
            "Content-Length: 1000000000000\r\n\r\n".encode()
        )
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert list(spool.iterdir()) == []


def test_an_upload_within_the_limit_still_works(small_limits: tuple[int, Path]) -> None:
    port, _ = small_limits
    api = f"http://127.0.0.1:{port}/api/v1/workspaces/default"
    model = httpx.put(f"{api}/models/small/artifacts/model.tar.gz", content=_tar_gz(SMALL))
    assert model.status_code == 201, model.text
    code = httpx.put(f"{api}/endpoints/scorer/artifacts/code.zip", content=_zip(SMALL))
    assert code.status_code == 201, code.text
