"""Pipeline graphs: what is refused before anything runs, and how reuse decisions read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cumulo import InvalidInput, Pipeline, PipelineData, PipelineParameter, PythonScriptStep
from cumulo.core.pipelines import PipelineSpec, StepSpec, fingerprint, fingerprint_parts, why_ran


def _step(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "config": {"script": "s.py"}, **kw}


def _parse(*steps: dict[str, Any], **kw: Any) -> PipelineSpec:
    return PipelineSpec.parse({"steps": list(steps), **kw})


def test_the_order_follows_data_and_run_after() -> None:
    spec = _parse(
        _step("d", inputs=["b", "c"]),
        _step("b", inputs=["a"], outputs=["b"]),
        _step("c", inputs=["a"], outputs=["c"]),
        _step("a", outputs=["a"]),
        _step("e", run_after=["d"]),
    )
    assert spec.order() == ["a", "b", "c", "d", "e"]
    assert spec.upstream() == {"d": ["b", "c"], "b": ["a"], "c": ["a"], "a": [], "e": ["d"]}


def test_a_cycle_is_refused_naming_its_steps() -> None:
    with pytest.raises(InvalidInput, match=r"cycle: .*x -> y -> z -> x|cycle: .*y -> z -> x -> y"):
        _parse(
            _step("x", inputs=["c"], outputs=["a"]),
            _step("y", inputs=["a"], outputs=["b"]),
            _step("z", inputs=["b"], outputs=["c"]),
            _step("free"),
        )
    with pytest.raises(InvalidInput, match="cycle: p -> p"):
        _parse(_step("p", run_after=["p"]))


def test_missing_producers_and_duplicates_are_refused() -> None:
    with pytest.raises(InvalidInput, match="Step 'train' takes 'prepared', which no step produces"):
        _parse(_step("train", inputs=["prepared"]))
    with pytest.raises(InvalidInput, match="used more than once: 'a'"):
        _parse(_step("a"), _step("a"))
    with pytest.raises(InvalidInput, match="produced by two steps, 'a' and 'b'"):
        _parse(_step("a", outputs=["m"]), _step("b", outputs=["m"]))
    with pytest.raises(InvalidInput, match="runs after 'ghost', which is not a step"):
        _parse(_step("a", run_after=["ghost"]))
    with pytest.raises(InvalidInput, match="both takes and produces m"):
        _parse(_step("a", inputs=["m"], outputs=["m"]))
    with pytest.raises(InvalidInput, match="uses parameter 'lr', which the pipeline does not"):
        _parse(_step("a", arguments=["${{parameters.lr}}"]))
    with pytest.raises(InvalidInput, match=r"uses \$\{\{inputs.q\}\} but does not list 'q'"):
        _parse(_step("a", arguments=["${{inputs.q}}"]))


def test_the_sdk_checks_the_graph_when_the_pipeline_is_built(tmp_path: Path) -> None:
    a, b = PipelineData("a"), PipelineData("b")
    one = PythonScriptStep("one", "s.py", tmp_path, arguments=["--in", b], outputs=[a])
    two = PythonScriptStep("two", "s.py", tmp_path, arguments=["--in", a], outputs=[b])
    assert one.inputs == [b]  # data used in arguments is an input unless it is an output
    with pytest.raises(InvalidInput, match="cycle"):
        Pipeline(None, [one, two])  # type: ignore[arg-type]
    lr1, lr2 = PipelineParameter("lr", 0.1), PipelineParameter("lr", 0.2)
    with pytest.raises(InvalidInput, match="'lr' has two defaults"):
        Pipeline(
            None,  # type: ignore[arg-type]
            [
                PythonScriptStep("p", "s.py", arguments=[lr1]),
                PythonScriptStep("q", "s.py", arguments=[lr2]),
            ],
        )


def test_arguments_resolve_to_folders_and_values() -> None:
    step = StepSpec.parse(
        _step(
            "t",
            arguments=["--data=${{inputs.d}}", "${{outputs.m}}", "--lr", "${{parameters.lr}}"],
            inputs=["d"],
            outputs=["m"],
        )
    )
    assert step.resolve({"lr": 0.5}) == ["--data=inputs/d", "outputs/m", "--lr", "0.5"]


def test_the_yaml_form_builds_the_same_graph(tmp_path: Path) -> None:
    data = {
        "parameters": {"lr": 0.1},
        "steps": {
            "prepare": {"script": "p.py", "arguments": ["--out", "${{outputs.prepared}}"]},
            "train": {
                "script": "t.py",
                "source_directory": "src",
                "arguments": ["--data", "${{inputs.prepared}}", "--lr", "${{parameters.lr}}"],
            },
        },
    }
    pipeline = Pipeline.from_dict(None, data, base=tmp_path)  # type: ignore[arg-type]
    prepare, train = pipeline.steps
    assert [d.name for d in prepare.outputs] == ["prepared"]
    assert [d.name for d in train.inputs] == ["prepared"]
    assert Path(train.source_directory) == tmp_path / "src"
    assert pipeline.parameters == {"lr": 0.1}
    spec = train.spec()
    assert spec.arguments == ["--data", "${{inputs.prepared}}", "--lr", "${{parameters.lr}}"]
    bad = {"steps": {"train": {"script": "t.py", "arguments": ["${{inputs.nobody}}"]}}}
    with pytest.raises(InvalidInput, match="'nobody', which no step produces"):
        Pipeline.from_dict(None, bad)  # type: ignore[arg-type]


def test_why_a_step_ran_names_what_changed() -> None:
    step = StepSpec.parse(
        _step(
            "t",
            config={"script": "t.py", "snapshot": "s1"},
            arguments=["${{inputs.d}}", "${{parameters.lr}}"],
            inputs=["d"],
        )
    )
    before = fingerprint_parts(step, {"lr": 0.1}, {"d": "h1"})
    same = fingerprint_parts(step, {"lr": 0.1, "unused": 3}, {"d": "h1"})
    assert fingerprint(before) == fingerprint(same)
    after = fingerprint_parts(step, {"lr": 0.2}, {"d": "h2"})
    assert fingerprint(after) != fingerprint(before)
    assert why_ran(after, before, "t") == "parameter lr changed (0.1 -> 0.2); input d changed"
    assert why_ran(after, None, "t") == "no earlier completed run of step 't' to reuse"
    moved = fingerprint_parts(
        StepSpec.parse({**step.to_dict(), "config": {"script": "t.py", "snapshot": "s2"}}),
        {"lr": 0.1},
        {"d": "h1"},
    )
    assert why_ran(moved, before, "t") == "code changed"
