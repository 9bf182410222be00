"""A step reads a registered dataset version: reuse follows its content, lineage its runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.pipelines.conftest import src_dir

from cumulo import Dataset, Experiment, Pipeline, PipelineData, PythonScriptStep, Workspace
from cumulo.core.datasets import input_mark
from cumulo.core.errors import InvalidInput
from cumulo.core.pipelines import StepSpec


def _register(ws: Workspace, folder: Path, text: str, name: str = "digits") -> object:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.txt").write_text(text)
    return Dataset.File.from_files(folder / "data.txt").register(ws, name)


def _steps(ws: Workspace, ds: object) -> list[PythonScriptStep]:
    src, a, b = src_dir(ws), PipelineData("a"), PipelineData("b")
    train = ds.as_named_input("train").as_download()  # type: ignore[attr-defined]
    return [
        PythonScriptStep("A", "step.py", src, ["--name", "A", "--inp", train, "--out", a],
                         outputs=[a]),
        PythonScriptStep("B", "step.py", src, ["--name", "B", "--inp", a, "--out", b],
                         outputs=[b]),
    ]  # fmt: skip


def test_the_yaml_form_names_a_dataset_version(module_ws: Workspace, tmp_path: Path) -> None:
    _register(module_ws, tmp_path / "yaml", "yaml;", "digits-yaml")
    data = {
        "steps": {
            "A": {
                "script": "step.py",
                "inputs": [{"name": "train", "dataset": "digits-yaml:1"}],
                "arguments": ["--inp", "${{inputs.train}}"],
            }
        }
    }
    spec = Pipeline.from_dict(module_ws, data, base=src_dir(module_ws)).steps[0].spec()
    assert spec.arguments == ["--inp", input_mark("train")]
    assert spec.config["inputs"] == [
        {"name": "train", "dataset": "digits-yaml", "version": 1, "mode": "download"}
    ]
    assert spec.inputs == []
    bad = {"steps": {"A": {"script": "step.py", "inputs": [{"name": "t", "data": "digits-yaml"}]}}}
    with pytest.raises(InvalidInput, match="dataset input"):
        Pipeline.from_dict(module_ws, bad)
    with pytest.raises(InvalidInput, match="names no dataset input"):
        StepSpec.parse({"name": "A", "config": {}, "arguments": [input_mark("train")]})


@pytest.mark.slow  # runs five jobs
def test_a_new_dataset_version_reruns_the_step_that_reads_it(
    module_ws: Workspace, tmp_path: Path
) -> None:
    ws = module_ws
    exp = Experiment(ws, "datasets")
    v1 = _register(ws, tmp_path / "v1", "one;")
    first = exp.submit(Pipeline(ws, _steps(ws, v1)))
    assert first.wait_for_completion(show_output=False, timeout=180)["status"] == "Completed"
    steps = {s["name"]: s for s in first.get_steps()}
    assert [steps[n]["state"] for n in "AB"] == ["completed", "completed"]
    step_a = first.find_step_run("A")
    got = first.find_step_run("B").download_file("outputs/b/data.txt", tmp_path / "b1.txt")
    assert Path(got).read_text() == "one;A;B;"
    assert [r.id for r in v1.get_runs()] == [step_a.id]  # type: ignore[attr-defined]

    again = exp.submit(Pipeline(ws, _steps(ws, v1)))
    assert again.wait_for_completion(show_output=False, timeout=180)["status"] == "Completed"
    assert [s["state"] for s in again.get_steps()] == ["reused", "reused"]

    v2 = _register(ws, tmp_path / "v2", "two;")
    assert v2.version == 2  # type: ignore[attr-defined]
    latest = Dataset.get_by_name(ws, "digits")
    third = exp.submit(Pipeline(ws, _steps(ws, latest)))
    assert third.wait_for_completion(show_output=False, timeout=180)["status"] == "Completed"
    steps = {s["name"]: s for s in third.get_steps()}
    assert [steps[n]["state"] for n in "AB"] == ["completed", "completed"]
    assert steps["A"]["reason"] == "dataset train changed (digits:1 -> digits:2)"
    assert steps["B"]["reason"] == "input a changed"
    ran = third.find_step_run("A")
    got = third.find_step_run("B").download_file("outputs/b/data.txt", tmp_path / "b3.txt")
    assert Path(got).read_text() == "two;A;B;"
    assert ran.get_properties()["pipeline.reason"] == steps["A"]["reason"]
    assert [r.id for r in latest.get_runs()] == [ran.id]
    graph = latest.get_lineage()
    assert {"from": "dataset:digits:2", "to": f"run:{ran.id}"} in graph["edges"]
    assert f"run:{step_a.id}" not in {n["id"] for n in graph["nodes"]}
