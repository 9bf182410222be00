"""Datastores: a local folder and an S3 API server (moto), credentials sealed at rest and
never answered, datasets made from a datastore's files, the default datastore."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import boto3
import httpx
import pandas as pd
import pytest
from sqlalchemy import select

from cumulo import AlreadyExists, Dataset, Datastore, InvalidInput, NotFound, Workspace
from cumulo.sdk.embedded import EmbeddedTransport
from cumulo.sdk.http import HttpTransport
from cumulo.store.schema_datasets import datastores

KEY_ID, SECRET = "AKIDCUMULOTEST01", "s3cr3t-never-shown-9f"


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"ds-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


def _csv(folder: Path, name: str, rows: int, shift: float = 0.0) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"n": range(rows), "v": [i * 0.5 + shift for i in range(rows)]}).to_csv(
        path, index=False
    )
    return path


def test_local_datastore_browse_upload_and_datasets_from_it(tmp_path: Path) -> None:
    ws = Workspace.create("local-store")
    assert [(d.name, d.kind, d.is_default) for d in Datastore.list(ws)] == [
        ("workspacestore", "workspace", True)
    ]
    root = tmp_path / "landing"
    _csv(root, "2026/a.csv", 10)
    _csv(root, "2026/b.csv", 5)
    (root / "notes.txt").write_text("not data")
    store = Datastore.register_local(ws, "landing", root)
    with pytest.raises(AlreadyExists):
        Datastore.register_local(ws, "landing", root)
    with pytest.raises(NotFound):
        Datastore.register_local(ws, "nowhere", tmp_path / "missing")
    assert [f.path for f in store.browse()] == ["2026", "notes.txt"]
    assert [f.path for f in store.browse("2026", recursive=True)] == ["2026/a.csv", "2026/b.csv"]
    with pytest.raises(InvalidInput, match=r"\.\."):
        store.browse("../..")

    ds = Dataset.Tabular.from_delimited_files(store.path("2026/*.csv")).register(ws, "landing")
    assert sorted(ds.to_path()) == ["/a.csv", "/b.csv"] and ds.profile["rows"] == 15
    assert "datastore landing" in ds.info.source
    (root / "2026" / "a.csv").write_text("n,v\n1,1\n")  # the version keeps what it read
    assert len(Dataset.get_by_name(ws, "landing", 1).to_pandas_dataframe()) == 15
    with pytest.raises(NotFound, match="matches"):
        Dataset.File.from_files(store.path("2027/*")).register(ws, "none")

    default = ws.get_default_datastore()
    assert default.name == "workspacestore"
    (tmp_path / "up").mkdir()
    _csv(tmp_path / "up", "c.csv", 3)
    assert default.upload(tmp_path / "up", "incoming") == ["incoming/c.csv"]
    assert [f.path for f in default.browse("incoming")] == ["incoming/c.csv"]
    store.set_as_default()
    assert ws.get_default_datastore().name == "landing"
    assert Datastore.get(ws, "workspacestore").is_default is False


def test_s3_datastore_seals_credentials_and_reads_through_them(
    s3_endpoint: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace.create("s3-store")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    store = Datastore.register_s3(ws, "lake", bucket, "raw/", endpoint_url=s3_endpoint)
    assert store.info.has_credentials and store.info.config == {
        "bucket": bucket,
        "prefix": "raw",
        "endpoint_url": s3_endpoint,
    }
    assert SECRET not in repr(store.info.to_dict()) and KEY_ID not in repr(store.info.to_dict())
    assert isinstance(ws.transport, EmbeddedTransport)
    with ws.transport.services.database.transaction(write=False) as conn:
        sealed = conn.execute(
            select(datastores.c.secret).where(datastores.c.name == "lake")
        ).scalar()
    assert sealed.startswith("sealed:fernet:") and SECRET not in sealed and KEY_ID not in sealed

    _csv(tmp_path, "day1.csv", 20)
    store.upload(tmp_path / "day1.csv", "events")
    listing = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listing["Contents"]] == ["raw/events/day1.csv"]
    assert [f.path for f in store.browse("events")] == ["events/day1.csv"]
    ds = Dataset.Tabular.from_delimited_files(store.path("events/day1.csv")).register(ws, "ev")
    assert ds.profile["rows"] == 20 and ds.to_path() == ["/day1.csv"]

    with pytest.raises(InvalidInput, match="credentials"):
        ws.transport.datasets.register_datastore(
            ws.name, "bad", "local", {"path": str(tmp_path)}, {"aws_access_key_id": "x"}
        )


def test_over_http_credentials_are_never_answered(
    cumulo_server_url: str,
    s3_endpoint: str,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"ds-{uuid.uuid4().hex[:8]}"
    HttpTransport(cumulo_server_url).tracking.create_workspace(name)
    ws = Workspace.connect(cumulo_server_url, name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    store = Datastore.register_s3(ws, "lake", bucket, endpoint_url=s3_endpoint)
    _csv(tmp_path, "x.csv", 4)
    store.upload(tmp_path / "x.csv")  # the server reads and writes with the sealed credentials
    ds = Dataset.File.from_files(store.path("x.csv")).register(ws, "x")
    assert ds.download(tmp_path / "got") == [str(tmp_path / "got" / "x.csv")]
    assert (tmp_path / "got" / "x.csv").read_bytes() == (tmp_path / "x.csv").read_bytes()
    base = f"{cumulo_server_url}/api/v1/workspaces/{name}"
    for url in (f"{base}/datastores", f"{base}/datastores/lake", f"{base}/default-datastore"):
        text = httpx.get(url).text
        assert SECRET not in text and KEY_ID not in text and "sealed" not in text
    assert httpx.get(f"{base}/datastores/lake").json()["has_credentials"] is True


def test_a_datastore_file_is_read_once_when_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cumulo.store.artifacts import ArtifactStore

    ws = Workspace.create("read-once")
    root = tmp_path / "once"
    (root / "in").mkdir(parents=True)
    (root / "in" / "a.bin").write_bytes(b"a" * 3000)
    (root / "in" / "b.bin").write_bytes(b"b" * 10)
    store = Datastore.register_local(ws, "once", root)
    opened: list[str] = []
    real_open = ArtifactStore.open

    def counting(self: ArtifactStore, prefix: str, rel: str) -> Any:
        if self.root == str(root.resolve()):
            opened.append(rel)
        return real_open(self, prefix, rel)

    monkeypatch.setattr(ArtifactStore, "open", counting)
    first = Dataset.File.from_files(store.path("in/*.bin")).register(ws, "once")
    assert sorted(opened) == ["in/a.bin", "in/b.bin"]
    again = Dataset.File.from_files(store.path("in")).register(ws, "once")
    assert again.version == first.version == 1
    monkeypatch.undo()
    out = first.download(tmp_path / "out")
    assert sorted(Path(p).read_bytes()[:1] for p in out) == [b"a", b"b"]
    assert (tmp_path / "out" / "a.bin").stat().st_size == 3000
