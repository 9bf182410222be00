"""Files through the artifact proxy (``mlflow-artifacts:/`` locations)."""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from pathlib import Path

import httpx
import pytest

import mlflow

A = "/api/2.0/mlflow-artifacts/artifacts"


def test_log_list_and_download(tracking_uri: str, client, tmp_path: Path, name: str) -> None:
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.json").write_text('{"b": 1}')
    (src / "sub" / "deeper" / "c.bin").write_bytes(bytes(range(256)))
    single = tmp_path / "notes.md"
    single.write_text("# notes")

    mlflow.set_experiment(name)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(single))
        mlflow.log_artifact(str(single), artifact_path="docs")
        mlflow.log_artifacts(str(src), artifact_path="data")
        mlflow.log_dict({"k": [1, 2]}, "config/params.json")
        mlflow.log_text("hello", "hello.txt")
    run_id = run.info.run_id

    top = client.list_artifacts(run_id)
    assert [(f.path, f.is_dir) for f in top] == [
        ("config", True),
        ("data", True),
        ("docs", True),
        ("hello.txt", False),
        ("notes.md", False),
    ]
    assert next(f for f in top if f.path == "notes.md").file_size == len("# notes")
    sub = client.list_artifacts(run_id, "data/sub")
    assert [(f.path, f.is_dir) for f in sub] == [
        ("data/sub/b.json", False),
        ("data/sub/deeper", True),
    ]
    assert client.list_artifacts(run_id, "data/a.txt") == []  # a file is not a folder

    out = Path(client.download_artifacts(run_id, "data", str(tmp_path / "out")))
    assert (out / "a.txt").read_text() == "alpha"
    assert (out / "sub" / "deeper" / "c.bin").read_bytes() == bytes(range(256))
    one = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="config/params.json", dst_path=str(tmp_path / "one")
    )
    assert json.loads(Path(one).read_text()) == {"k": [1, 2]}
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/hello.txt") == "hello"


def test_delete_and_path_checks(tracking_uri: str, client, name: str, tmp_path: Path) -> None:
    run_id = client.create_run(client.create_experiment(name)).info.run_id
    base = f"{tracking_uri}{A}/default/runs/{run_id}"
    assert httpx.put(f"{base}/x/file.txt", content=b"data").status_code == 200
    assert httpx.get(f"{base}/x/file.txt").content == b"data"
    assert [f.path for f in client.list_artifacts(run_id)] == ["x"]

    assert httpx.delete(f"{base}/x/file.txt").status_code == 200
    missing = httpx.get(f"{base}/x/file.txt")
    assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    # No path may leave the run, the workspace or the areas the proxy serves.
    escape = httpx.put(f"{tracking_uri}{A}/default/runs/{run_id}/%2E%2E/%2E%2E/evil", content=b"")
    assert escape.status_code == 400
    other_ws = httpx.get(f"{tracking_uri}{A}/other/runs/{run_id}/x")
    assert other_ws.status_code == 404
    unknown_run = httpx.put(f"{tracking_uri}{A}/default/runs/{'0' * 32}/f", content=b"x")
    assert unknown_run.status_code == 404
    listing = httpx.get(f"{tracking_uri}{A}", params={"path": "default"})
    assert listing.status_code == 200 and listing.json().get("files", []) == []


@pytest.mark.slow
def test_large_file_is_streamed(tracking_uri: str, client, tmp_path: Path, name: str) -> None:
    big = tmp_path / "big.bin"
    size = 48 * 1024 * 1024
    with open(big, "wb") as fh:
        for _ in range(size // (1024 * 1024)):
            fh.write(os.urandom(1024 * 1024))
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    run_id = client.create_run(client.create_experiment(name)).info.run_id

    # Client and server share this process: the peak of Python allocations across an
    # upload and a download shows that neither side holds the file whole.
    tracemalloc.start()
    try:
        client.log_artifact(run_id, str(big), "blobs")
        out = Path(client.download_artifacts(run_id, "blobs/big.bin", str(tmp_path / "dl")))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size / 4, f"peak Python memory {peak / 2**20:.1f} MiB for a 48 MiB file"
    assert out.stat().st_size == size
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
