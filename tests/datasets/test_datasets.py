"""Datasets on every backend: versions by content, files back byte for byte, profiles
checked against pandas, drift between versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cumulo import Conflict, Dataset, InvalidInput, InvalidState, NotFound, Workspace
from cumulo.services import dataset_tables


def _frame(seed: int = 0, rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "x": rng.normal(size=rows),
            "label": rng.choice(["cat", "dog", "owl"], size=rows),
        }
    )
    frame.loc[[3, 50, 200], "x"] = np.nan
    return frame


def test_file_dataset_versions_are_named_by_content(workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "files"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)

    first = Dataset.File.from_files(folder).register(workspace, "raw", description="two files")
    again = Dataset.File.from_files(str(folder)).register(workspace, "raw")
    assert (first.version, again.version, again.id) == (1, 1, first.id)
    assert sorted(first.to_path()) == ["/a.txt", "/sub/b.bin"]

    (folder / "a.txt").write_text("alpha, changed")
    second = Dataset.File.from_files(folder).register(workspace, "raw", tags={"stage": "2"})
    assert second.version == 2 and second.id != first.id
    with pytest.raises(Conflict, match="create_new_version"):
        Dataset.File.from_files(folder / "sub").register(workspace, "raw", create_new_version=False)

    latest = Dataset.get_by_name(workspace, "raw")
    assert (latest.version, latest.tags) == (2, {"stage": "2"})
    old = Dataset.get_by_name(workspace, "raw", version=1)
    got = old.download(tmp_path / "out")
    assert sorted(Path(p).relative_to(tmp_path / "out").as_posix() for p in got) == [
        "a.txt",
        "sub/b.bin",
    ]
    assert (tmp_path / "out" / "a.txt").read_text() == "alpha"
    assert (tmp_path / "out" / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 10
    with pytest.raises(InvalidState, match="overwrite"):
        old.download(tmp_path / "out")
    assert [(d.name, d.version) for d in Dataset.list(workspace)] == [("raw", 2)]
    assert [d.version for d in Dataset.get_versions(workspace, "raw")] == [2, 1]
    with pytest.raises(NotFound):
        Dataset.get_by_name(workspace, "raw", version=7)


def test_tabular_profile_preview_and_frames_match_pandas(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_tables, "CHUNK_ROWS", 64)  # embedded: several chunks per file
    frame = _frame()
    (tmp_path / "parts").mkdir()
    frame.iloc[:120].to_csv(tmp_path / "parts" / "1.csv", index=False, sep=";")
    frame.iloc[120:].to_csv(tmp_path / "parts" / "2.csv", index=False, sep=";")
    ds = Dataset.Tabular.from_delimited_files(tmp_path / "parts", separator=";").register(
        workspace, "animals"
    )
    assert ds.schema == [
        {"name": "id", "type": "integer"},
        {"name": "x", "type": "float"},
        {"name": "label", "type": "string"},
    ]
    profile = ds.profile
    assert (profile["rows"], profile["columns"]) == (300, 3)
    x = profile["column_profiles"]["x"]
    assert (x["count"], x["missing"], x["distinct"]) == (297, 3, frame["x"].nunique())
    assert x["min"] == pytest.approx(frame["x"].min())
    assert x["max"] == pytest.approx(frame["x"].max())
    assert x["mean"] == pytest.approx(frame["x"].mean())
    counts, edges = np.histogram(frame["x"].dropna(), bins=20)
    assert x["histogram"]["counts"] == counts.tolist()
    assert x["histogram"]["edges"] == pytest.approx(edges.tolist())
    label = profile["column_profiles"]["label"]
    assert (label["distinct"], label["missing"], "histogram" in label) == (3, 0, False)

    pd.testing.assert_frame_equal(ds.take(5), frame.head(5), check_dtype=False)
    pd.testing.assert_frame_equal(ds.to_pandas_dataframe(), frame)

    parquet = Dataset.Tabular.from_pandas_dataframe(frame).register(workspace, "animals-pq")
    same = Dataset.Tabular.from_pandas_dataframe(frame.copy()).register(workspace, "animals-pq")
    assert same.version == parquet.version == 1
    assert parquet.profile["column_profiles"]["x"]["mean"] == pytest.approx(frame["x"].mean())
    pd.testing.assert_frame_equal(parquet.to_pandas_dataframe(), frame)


def test_drift_between_versions_per_column(workspace: Workspace) -> None:
    base = Dataset.Tabular.from_pandas_dataframe(_frame(seed=1, rows=2000)).register(
        workspace, "drift"
    )
    shifted = _frame(seed=2, rows=2000)
    shifted["x"] = shifted["x"] * 0.5 + 1.5
    shifted["extra"] = 1.0
    other = Dataset.Tabular.from_pandas_dataframe(shifted.drop(columns=["id"])).register(
        workspace, "drift"
    )
    report = base.compare(other)
    by = {c["column"]: c for c in report["columns"]}
    assert report["drift"] is True and report["rows"] == [2000, 2000]
    assert by["x"]["drift"] and by["x"]["psi"] > 1.0 and by["x"]["wasserstein"] > 0.05
    assert not by["label"]["drift"] and by["label"]["psi"] < 0.05  # same mix of values
    assert (by["id"]["change"], by["extra"]["change"]) == ("removed", "added")
    lenient = base.compare(other, threshold=1000)
    assert not {c["column"]: c for c in lenient["columns"]}["x"]["drift"]


def test_wrong_inputs_are_refused_with_a_reason(workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("a,b\n1,2\n")
    ds = Dataset.Tabular.from_delimited_files(tmp_path / "a.csv")
    with pytest.raises(InvalidState, match="Register"):
        ds.take(1)
    with pytest.raises(InvalidInput, match="dataset name"):
        ds.register(workspace, "no spaces")
    with pytest.raises(NotFound):
        Dataset.File.from_files(tmp_path / "missing").register(workspace, "m")
    files = Dataset.File.from_files(tmp_path / "a.csv").register(workspace, "plain")
    with pytest.raises(InvalidInput, match="as_download"):
        files.as_named_input("x").as_mount()
    with pytest.raises(InvalidInput, match="no rows"):
        workspace.transport.datasets.take(workspace.name, "plain", 1, 3)


def test_a_file_whose_bytes_hash_otherwise_is_refused_and_not_kept(
    workspace: Workspace,
) -> None:
    import hashlib
    import io

    client = workspace.transport.datasets
    named = hashlib.sha256(b"the bytes meant").hexdigest()
    with pytest.raises(InvalidInput, match="hashes to"):
        client.upload_dataset_file(workspace.name, named, io.BytesIO(b"other bytes"))
    assert client.has_dataset_file(workspace.name, named) is False
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    assert client.has_dataset_file(workspace.name, wrong) is False  # not kept under its own

    assert client.upload_dataset_file(workspace.name, named, io.BytesIO(b"the bytes meant")) == 15
    assert client.has_dataset_file(workspace.name, named) is True
    files = [{"path": "m.txt", "size": 15, "sha256": named}]
    info = client.register_dataset(workspace.name, "meant", "file", files=files)
    assert (info.version, info.files) == (1, files)
