"""A job reads a dataset version; the run records it; lineage runs from the data to the
model and back; a version a model depends on cannot be deleted; large files stream."""

from __future__ import annotations

import textwrap
import tracemalloc
from pathlib import Path

import httpx
import pytest

from cumulo import Conflict, Dataset, Experiment, Model, ScriptRunConfig, Workspace
from cumulo.sdk.http import HttpTransport

TRAIN = textwrap.dedent(
    """
    import pathlib, sys
    from cumulo import Run

    folder = pathlib.Path(sys.argv[sys.argv.index("--data") + 1])
    rows = sum(len(p.read_text().splitlines()) - 1 for p in sorted(folder.glob("*.csv")))
    pathlib.Path("outputs").mkdir(exist_ok=True)
    pathlib.Path("outputs/model.txt").write_text(f"rows={rows} from {folder}")
    Run.get_context().log("rows", rows)
    """
)


def _data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.csv").write_text("x,y\n1,2\n3,4\n")
    (folder / "b.csv").write_text("x,y\n5,6\n")
    return folder


@pytest.mark.slow
def test_a_job_reads_a_dataset_and_the_lineage_follows(tmp_path: Path) -> None:
    ws = Workspace.create("lineage")
    ds = Dataset.Tabular.from_delimited_files(_data(tmp_path / "data")).register(ws, "train")
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(TRAIN)
    config = ScriptRunConfig(
        src, "train.py", arguments=["--data", ds.as_named_input("training").as_download()]
    )
    run = Experiment(ws, "fit").submit(config)
    run.wait_for_completion(show_output=False, raise_on_error=True, timeout=120)
    assert run.get_metrics()["rows"] == 3
    assert [r.id for r in ds.get_runs()] == [run.id]
    unused = Dataset.File.from_files(tmp_path / "data" / "a.csv").register(ws, "unused")
    assert unused.get_runs() == []

    model = run.register_model("fit-model", "outputs/model.txt")
    graph = model.get_lineage()
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert set(nodes) == {"dataset:train:1", f"run:{run.id}", "model:fit-model:1"}
    assert graph["edges"] == [
        {"from": "dataset:train:1", "to": f"run:{run.id}"},
        {"from": f"run:{run.id}", "to": "model:fit-model:1"},
    ]
    assert ds.get_lineage() == graph
    with pytest.raises(Conflict, match="fit-model:1"):
        ds.delete()
    unused.delete()
    with pytest.raises(Exception, match="no version 1"):
        Dataset.get_by_name(ws, "unused", 1)
    Model(ws, "fit-model", version=1).delete()
    ds.delete()  # nothing depends on it any more
    assert Dataset.list(ws) == []


@pytest.mark.slow
def test_the_lineage_route_and_a_job_over_http(cumulo_server_url: str, tmp_path: Path) -> None:
    name = "lineage-http"
    HttpTransport(cumulo_server_url).tracking.create_workspace(name, exist_ok=True)
    ws = Workspace.connect(cumulo_server_url, name)
    ds = Dataset.File.from_files(_data(tmp_path / "data")).register(ws, "train")
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(TRAIN)
    with pytest.raises(Exception, match="as_named_input"):
        Experiment(ws, "fit").submit(ScriptRunConfig(src, "train.py", arguments=[ds]))
    config = ScriptRunConfig(src, "train.py", arguments=["--data", ds.as_named_input("t")])
    run = Experiment(ws, "fit").submit(config)
    run.wait_for_completion(show_output=False, raise_on_error=True, timeout=120)
    run.register_model("m", "outputs/model.txt")
    url = f"{cumulo_server_url}/api/v1/workspaces/{name}/lineage"
    answer = httpx.get(url, params={"dataset": "train", "version": 1}).json()
    assert [n["kind"] for n in answer["nodes"]] == ["dataset", "run", "model"]
    assert httpx.get(url, params={"run_id": run.id}).json()["nodes"] == answer["nodes"]
    assert httpx.get(url).status_code == 400


def test_a_large_file_is_hashed_and_stored_in_bounded_memory(tmp_path: Path) -> None:
    ws = Workspace.create("big")
    big = tmp_path / "big.bin"
    block = bytes(range(256)) * 4096  # 1 MiB
    with open(big, "wb") as fh:
        for i in range(48):
            fh.write(block[i:] + block[:i])
    tracemalloc.start()
    try:
        ds = Dataset.File.from_files(big).register(ws, "big")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ds.info.size == 48 * 2**20
    assert peak < 12 * 2**20, f"registering a 48 MiB file peaked at {peak / 2**20:.1f} MiB"
    got = ds.download(tmp_path / "out")
    assert Path(got[0]).stat().st_size == big.stat().st_size


def test_a_model_registered_naming_a_dataset_version_depends_on_it(tmp_path: Path) -> None:
    ws = Workspace.create("named")
    ds = Dataset.File.from_files(_data(tmp_path / "data")).register(ws, "train")
    (tmp_path / "model.txt").write_text("weights")
    model = Model.register(ws, tmp_path / "model.txt", "local-model", datasets=[("training", ds)])
    assert model.datasets == [{"scenario": "training", "dataset": "train", "version": "1"}]
    edges = [{"from": "dataset:train:1", "to": "model:local-model:1"}]
    assert ds.get_lineage()["edges"] == edges
    assert model.get_lineage()["edges"] == edges
    with pytest.raises(Conflict, match="local-model:1"):
        ds.delete()
    model.delete()
    ds.delete()
