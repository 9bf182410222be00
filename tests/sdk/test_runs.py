"""The SDK's tracking calls, run against every backend (see the ``workspace`` fixture)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cumulo import (
    Conflict,
    Experiment,
    InvalidInput,
    InvalidPath,
    InvalidState,
    NotFound,
    Run,
    RunStatus,
    Workspace,
)


def test_experiment_is_created_on_first_use_and_listed(workspace: Workspace) -> None:
    exp = Experiment(workspace, "iris")
    again = Experiment(workspace, "iris")
    assert exp.id == again.id
    names = {e.name for e in Experiment.list(workspace)}
    assert {"iris", "Default"} <= names
    assert "iris" in workspace.experiments


def test_interactive_run_logs_metrics_params_tags_properties(workspace: Workspace) -> None:
    exp = Experiment(workspace, "train")
    with exp.start_logging(display_name="first") as run:
        assert run.get_status() == "Running"
        run.log_params({"lr": 0.1, "model": "rf"})
        for i in range(5):
            run.log("loss", 1.0 / (i + 1))
        run.log_metrics({"acc": 0.9, "f1": 0.8}, step=3)
        run.tag("team", "vision")
        run.set_tags({"stage": "dev", "n": 3})
        run.remove_tags(["stage"])
        run.add_properties({"dataset": "iris-v1"})
    assert run.get_status() == "Completed"
    assert run.number == 1 and run.display_name == "first"
    metrics = run.get_metrics()
    assert metrics["loss"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert metrics["acc"] == 0.9
    assert run.get_metrics("f1") == {"f1": 0.8}
    assert run.get_params() == {"lr": "0.1", "model": "rf"}
    assert run.get_tags() == {"team": "vision", "n": "3"}
    assert run.get_properties() == {"dataset": "iris-v1"}
    history = run.get_metric_history("loss")
    assert history["step"] == [0, 1, 2, 3, 4]
    details = run.get_details()
    assert [s["status"] for s in details["statusHistory"]] == ["Running", "Completed"]
    assert details["endTimeUtc"] and details["experiment"] == "train"


def test_a_series_summary_leaves_nan_out_of_its_range(workspace: Workspace) -> None:
    run = Experiment(workspace, "summary").start_logging()
    for value in (3.0, float("nan"), -1.0, 7.5, float("nan")):
        run.log("loss", value)
    run.complete()
    summary = workspace.transport.tracking.get_metric_summary(workspace.name, run.id, "loss")
    assert summary == {"count": 5, "min": -1.0, "max": 7.5, "last": None}


def test_a_series_summary_takes_its_last_value_by_step_not_by_logging_order(
    workspace: Workspace,
) -> None:
    run = Experiment(workspace, "summary-order").start_logging()
    run.log("loss", 2.0, step=5)
    run.log("loss", float("inf"), step=1)
    run.log("loss", -3.0, step=2)
    run.complete()
    summary = workspace.transport.tracking.get_metric_summary(workspace.name, run.id, "loss")
    assert summary == {"count": 3, "min": -3.0, "max": float("inf"), "last": 2.0}


def test_nan_and_infinity_are_stored_faithfully(workspace: Workspace) -> None:
    run = Experiment(workspace, "specials").start_logging()
    run.log("nan", float("nan"))
    run.log("pinf", float("inf"))
    run.log("ninf", float("-inf"))
    run.log("series", 1.0)
    run.log("series", float("nan"))
    run.complete()
    m = run.get_metrics()
    assert math.isnan(m["nan"]) and m["pinf"] == math.inf and m["ninf"] == -math.inf
    assert m["series"][0] == 1.0 and math.isnan(m["series"][1])
    assert math.isnan(run.refresh().info.metrics["nan"].value)


def test_non_numeric_metric_values_are_rejected_at_the_call(workspace: Workspace) -> None:
    run = Experiment(workspace, "bad").start_logging()
    for bad in ("0.5", None, True, [1.0]):
        with pytest.raises(InvalidInput, match="must be a number"):
            run.log("m", bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="Invalid metric name"):
        run.log("bad;name", 1.0)
    run.log("ok", 1)
    run.complete()
    assert run.get_metrics() == {"ok": 1.0}


def test_params_are_immutable_properties_too(workspace: Workspace) -> None:
    run = Experiment(workspace, "immutable").start_logging()
    run.log_params({"lr": 0.1})
    run.log_params({"lr": 0.1})  # same value again is fine (retry-safe)
    with pytest.raises(Conflict, match="params cannot change"):
        run.log_params({"lr": 0.2, "other": 1})
    assert run.get_params() == {"lr": "0.1"}  # nothing of the bad batch was written
    run.add_properties({"p": "1"})
    with pytest.raises(Conflict, match="cannot change"):
        run.add_properties({"p": "2"})


def test_lists_rows_tables_and_images(workspace: Workspace, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Experiment(workspace, "records").start_logging()
    run.log_list("classes", ["setosa", "versicolor"])
    run.log_row("pr", precision=0.9, recall=0.8)
    run.log_row("pr", precision=0.85, recall=0.9)
    run.log_table("curve", {"x": [1, 2], "y": [0.5, 0.7]})
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    run.log_image("confusion", plot=fig)
    plt.close(fig)
    png = tmp_path / "pic.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    run.log_image("raw", path=png)
    run.complete()
    m = run.get_metrics()
    assert m["classes"] == ["setosa", "versicolor"]
    assert m["pr"] == {"precision": [0.9, 0.85], "recall": [0.8, 0.9]}
    assert m["curve"] == {"x": [1, 2], "y": [0.5, 0.7]}
    assert m["confusion"] == "images/confusion/0000.png"
    assert m["raw"] == "images/raw/0000.png"
    out = run.download_file(m["confusion"], tmp_path / "c.png")
    assert out.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(InvalidInput):
        run.log_image("both", path=png, plot=fig)


def test_files_upload_list_download(workspace: Workspace, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    run = Experiment(workspace, "files").start_logging()
    run.upload_file("outputs/model.pkl", src / "a.txt")
    assert run.upload_folder("data", src) == ["data/a.txt", "data/sub/b.bin"]
    assert run.get_file_names() == ["data/a.txt", "data/sub/b.bin", "outputs/model.pkl"]
    assert run.get_file_names("data/sub") == ["data/sub/b.bin"]
    dest = run.download_file("data/sub/b.bin", tmp_path / "dl" / "b.bin")
    assert dest.read_bytes() == (src / "sub" / "b.bin").read_bytes()
    got = run.download_files(prefix="data", output_directory=tmp_path / "all")
    assert sorted(p.relative_to(tmp_path / "all").as_posix() for p in got) == [
        "data/a.txt",
        "data/sub/b.bin",
    ]
    with pytest.raises(NotFound):
        run.download_file("missing.txt", tmp_path / "x")


def test_big_transfers_show_their_progress(
    workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"shard-{i}.bin").write_bytes(bytes([i]) * 300_000)
    run = Experiment(workspace, "progress").start_logging()
    run.upload_folder("shards", src, show_progress=True)
    err = capsys.readouterr().err
    assert "Uploading 3 files to shards" in err and "900.0/900.0 kB" in err  # every byte
    got = run.download_files("shards", output_directory=tmp_path / "back", show_progress=True)
    assert "Downloading 3 files" in capsys.readouterr().err
    assert sorted(p.read_bytes() for p in got) == sorted(f.read_bytes() for f in src.iterdir())
    run.upload_file("outputs/small.txt", src / "shard-0.bin")  # small and not a terminal: quiet
    run.download_file("outputs/small.txt", tmp_path / "small.bin")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("bad", ["../escape.txt", "/etc/passwd", "a/../../b", "C:/x"])
def test_artifact_paths_cannot_escape(workspace: Workspace, tmp_path: Path, bad: str) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    run = Experiment(workspace, "paths").start_logging()
    with pytest.raises(InvalidPath):
        run.upload_file(bad, f)
    with pytest.raises(InvalidPath):
        run.download_file(bad, tmp_path / "out")


def test_upload_folder_refuses_links_that_leave_it(workspace: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "ok.txt").write_text("ok")
    (folder / "link.txt").symlink_to(outside)
    run = Experiment(workspace, "links").start_logging()
    with pytest.raises(InvalidPath, match="outside"):
        run.upload_folder("f", folder)
    assert run.get_file_names() == []  # nothing was uploaded


def test_context_manager_fails_with_traceback(workspace: Workspace) -> None:
    exp = Experiment(workspace, "failing")
    with pytest.raises(ZeroDivisionError), exp.start_logging() as run:
        run.log("before", 1.0)
        _ = 1 / 0
    details = run.get_details()
    assert details["status"] == "Failed"
    assert "ZeroDivisionError" in details["error"]["message"]
    assert "1 / 0" in details["error"]["traceback"]
    assert run.get_metrics() == {"before": 1.0}  # buffered metrics were not lost


def test_fail_and_cancel(workspace: Workspace) -> None:
    exp = Experiment(workspace, "endings")
    failed = exp.start_logging()
    failed.fail("data was empty", error_code="EmptyData")
    assert failed.get_details()["error"] == {"message": "data was empty", "code": "EmptyData"}
    canceled = exp.start_logging()
    canceled.cancel()
    assert canceled.get_status() == "Canceled"
    with pytest.raises(InvalidState, match="cannot move"):
        canceled._set_status(RunStatus.QUEUED)


def test_child_runs_and_recursive_metrics(workspace: Workspace) -> None:
    parent = Experiment(workspace, "sweep").start_logging(display_name="parent")
    children = [parent.child_run(f"trial-{i}") for i in range(3)]
    for i, child in enumerate(children):
        child.log("score", float(i))
        child.complete()
    grandchild = children[0].child_run("inner")
    grandchild.log("deep", 1.0)
    grandchild.complete()
    parent.complete()
    assert [c.display_name for c in parent.get_children()] == ["trial-0", "trial-1", "trial-2"]
    assert len(list(parent.get_children(recursive=True))) == 4
    assert children[1].parent == parent
    everything = parent.get_metrics(recursive=True)
    assert everything[children[2].id] == {"score": 2.0}
    assert everything[grandchild.id] == {"deep": 1.0}
    # child runs stay out of the top-level listing unless asked for
    assert [r.display_name for r in Experiment(workspace, "sweep").get_runs()] == ["parent"]
    assert len(list(Experiment(workspace, "sweep").get_runs(include_children=True))) == 5


def _seed(workspace: Workspace, name: str = "search") -> Experiment:
    exp = Experiment(workspace, name)
    for i in range(12):
        with exp.start_logging(display_name=f"r{i}") as run:
            run.log_params({"model": "rf" if i % 2 else "svm", "depth": str(i)})
            run.log("acc", i / 10)
            if i % 3 == 0:
                run.tag("keep", "yes")
    return exp


def test_get_runs_filters_orders_and_pages(workspace: Workspace) -> None:
    exp = _seed(workspace)
    rf = list(
        exp.get_runs(
            filter="params.model = 'rf' AND metrics.acc > 0.4", order_by="metrics.acc DESC"
        )
    )
    assert [r.display_name for r in rf] == ["r11", "r9", "r7", "r5"]
    asc = [r.display_name for r in exp.get_runs(order_by=["metrics.acc ASC"], max_results=3)]
    assert asc == ["r0", "r1", "r2"]
    assert {r.display_name for r in exp.get_runs(tags={"keep": "yes"})} == {"r0", "r3", "r6", "r9"}
    assert {r.display_name for r in exp.get_runs(tags=["keep"], filter="metrics.acc >= 0.6")} == {
        "r6",
        "r9",
    }
    assert len(list(exp.get_runs(status="Completed"))) == 12
    assert list(exp.get_runs(status="Running")) == []
    like = [
        r.display_name
        for r in exp.get_runs(
            filter="attributes.run_name LIKE 'r1%'", order_by="attributes.run_name"
        )
    ]
    assert like == ["r1", "r10", "r11"]
    newest = [r.display_name for r in exp.get_runs(max_results=2)]
    assert newest == ["r11", "r10"]
    keys = exp.get_run_keys()  # what a filter or a comparison can name
    assert keys["metrics"] == ["acc"] and keys["params"] == ["depth", "model"]
    assert "keep" in keys["tags"]
    assert Experiment(workspace, "empty-keys").get_run_keys() == {
        "metrics": [],
        "params": [],
        "tags": [],
    }
    # pages of the store are walked transparently
    page = workspace.transport.tracking.search_runs(workspace.name, [exp.id], max_results=5)
    assert len(page.runs) == 5 and page.next_page_token
    second = workspace.transport.tracking.search_runs(
        workspace.name, [exp.id], max_results=5, page_token=page.next_page_token
    )
    assert {r.id for r in page.runs}.isdisjoint({r.id for r in second.runs})
    with pytest.raises(InvalidInput, match="Unknown run attribute"):
        list(exp.get_runs(filter="attributes.color = 'red'"))


def test_archive_and_delete_experiment_removes_runs_and_files(
    workspace: Workspace, tmp_path: Path
) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    exp = Experiment(workspace, "doomed")
    run = exp.start_logging()
    run.upload_file("outputs/f.txt", f)
    run.complete()
    exp.archive()
    assert "doomed" not in {e.name for e in Experiment.list(workspace)}
    assert "doomed" in {e.name for e in Experiment.list(workspace, include_archived=True)}
    exp.delete()
    with pytest.raises(NotFound):
        workspace.get_run(run.id)
    assert "doomed" not in {e.name for e in Experiment.list(workspace, include_archived=True)}
    # a new experiment of the same name starts empty
    assert list(Experiment(workspace, "doomed").get_runs()) == []


def test_delete_run_removes_children_and_files(workspace: Workspace, tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    exp = Experiment(workspace, "prune")
    run = exp.start_logging()
    child = run.child_run()
    child.upload_file("out.txt", f)
    keep = exp.start_logging()
    run.delete()
    for gone in (run.id, child.id):
        with pytest.raises(NotFound):
            workspace.get_run(gone)
    assert workspace.get_run(keep.id) == keep


def test_runs_of_another_workspace_are_invisible(workspace: Workspace) -> None:
    run = Experiment(workspace, "private").start_logging()
    if workspace.url:
        other = Workspace.connect(workspace.url, _fresh_remote(workspace), token=workspace._token)
    else:
        assert workspace._settings is not None
        other = Workspace.create(
            "other-" + workspace.name[-6:],
            home=workspace._settings.home,
            database_url=workspace._settings.database_url,
            artifact_root=workspace._settings.artifact_root,
        )
    with pytest.raises(NotFound):
        other.get_run(run.id)
    with pytest.raises(NotFound):
        other.transport.tracking.log_batch(other.name, run.id, metrics=[("m", 1.0, 0, 0)])


def _fresh_remote(workspace: Workspace) -> str:
    name = "other-" + workspace.name[-6:]
    workspace.transport.tracking.create_workspace(name, exist_ok=True)
    return name


def test_logging_to_a_deleted_run_is_refused(workspace: Workspace) -> None:
    run = Experiment(workspace, "soft").start_logging()
    workspace.transport.tracking.update_run(workspace.name, run.id, deleted=True)
    with pytest.raises(InvalidState, match="deleted"):
        run.log_params({"a": 1})


def test_display_helpers_render_html(workspace: Workspace) -> None:
    exp = _seed(workspace, "html")
    run = next(exp.get_runs())
    assert "acc" in run._repr_html_() and "Completed" in run._repr_html_()
    assert "html" in exp._repr_html_() and "r11" in exp._repr_html_()
    assert "html" in workspace._repr_html_()


def test_get_run_of_unknown_id(workspace: Workspace) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        workspace.get_run("0" * 32)
    run = Experiment(workspace, "short-ids").start_logging()
    assert workspace.get_run(run.id[:9]).id == run.id  # the start tables and the CLI show


def test_run_get_context_finds_the_job_run(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Experiment(workspace, "ctx").start_logging()
    monkeypatch.setenv("CUMULO_RUN_ID", run.id)
    monkeypatch.setenv("CUMULO_WORKSPACE", workspace.name)
    if workspace.url:
        monkeypatch.setenv("CUMULO_URL", workspace.url)
        if workspace._token:
            monkeypatch.setenv("CUMULO_TOKEN", workspace._token)
    else:
        assert workspace._settings is not None
        monkeypatch.setenv("CUMULO_HOME", str(workspace._settings.home))
        monkeypatch.setenv("CUMULO_DATABASE_URL", workspace._settings.database_url)
        monkeypatch.setenv("CUMULO_ARTIFACT_ROOT", workspace._settings.artifact_root)
    ctx = Run.get_context()
    assert isinstance(ctx, Run) and ctx.id == run.id
    ctx.log("from_job", 2.0)
    ctx.flush()
    assert run.get_metrics() == {"from_job": 2.0}
