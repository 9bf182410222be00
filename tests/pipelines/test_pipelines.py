"""Pipelines end to end: real data between steps, parallel branches, reuse, failures, restart."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.jobs.conftest import wait_until
from tests.pipelines.conftest import src_dir

from cumulo import (
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineRun,
    PythonScriptStep,
    Workspace,
)
from cumulo.core.pipelines import STEP_TAG
from cumulo.sdk.embedded import EmbeddedTransport

pytestmark = pytest.mark.slow  # each runs several jobs


def _diamond(
    ws: Workspace,
    tag: str,
    sleep: float = 0.0,
    fail_if: str = "",
    a_reuse: bool = True,
    c_sleep: float | None = None,
) -> list[PythonScriptStep]:
    src = src_dir(ws)
    a, b, c, d = (PipelineData(x) for x in "abcd")
    common = ["--tag", tag]
    return [
        PythonScriptStep(
            "A", "step.py", src, [*common, "--name", "A", "--out", a], outputs=[a],
            allow_reuse=a_reuse,
        ),
        PythonScriptStep(
            "B", "step.py", src,
            [*common, "--name", "B", "--inp", a, "--out", b, "--sleep", sleep,
             "--fail-if", fail_if],
            outputs=[b],
        ),
        PythonScriptStep(
            "C", "step.py", src,
            [*common, "--name", PipelineParameter("cname", "C"), "--inp", a, "--out", c,
             "--sleep", sleep if c_sleep is None else c_sleep],
            outputs=[c],
        ),
        PythonScriptStep(
            "D", "step.py", src, [*common, "--name", "D", "--inp", b, "--inp", c, "--out", d],
            outputs=[d],
        ),
    ]  # fmt: skip


def _finish(run: PipelineRun, timeout: float = 180) -> dict[str, Any]:
    return run.wait_for_completion(show_output=False, timeout=timeout)


def _steps(run: PipelineRun) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in run.get_steps()}


def _span(run: PipelineRun, step: str) -> tuple[float, float]:
    line = next(ln for ln in run.find_step_run(step).get_logs().splitlines() if "span" in ln)
    _, start, end = line.split()
    return float(start), float(end)


def test_a_diamond_passes_real_data_and_runs_its_branches_at_once(
    module_ws: Workspace, tmp_path: Path
) -> None:
    pipeline = Pipeline(module_ws, _diamond(module_ws, uuid.uuid4().hex, sleep=1.5))
    run = Experiment(module_ws, "diamond").submit(pipeline)
    assert isinstance(run, PipelineRun)
    assert _finish(run)["status"] == "Completed"
    steps = _steps(run)
    assert {s["status"] for s in steps.values()} == {"Completed"}
    assert steps["D"]["upstream"] == ["B", "C"]
    assert "no earlier completed run of step 'D'" in steps["D"]["reason"]
    d_run = run.find_step_run("D")
    got = d_run.download_file("outputs/d/data.txt", tmp_path / "d.txt")
    assert Path(got).read_text() == "A;B;A;C;D;"
    assert d_run.get_properties()["pipeline.output.d"] == steps["D"]["outputs"]["d"]
    assert {c.display_name for c in run.get_children()} == {"A", "B", "C", "D"}
    b, c = _span(run, "B"), _span(run, "C")
    assert b[0] < c[1] and c[0] < b[1], f"B {b} and C {c} did not overlap"


def test_an_unchanged_step_is_reused_and_a_changed_one_says_why(module_ws: Workspace) -> None:
    tag = uuid.uuid4().hex
    exp = Experiment(module_ws, "reuse")
    first = exp.submit(Pipeline(module_ws, _diamond(module_ws, tag)))
    assert _finish(first)["status"] == "Completed"
    ran = _steps(first)

    again = exp.submit(Pipeline(module_ws, _diamond(module_ws, tag)))
    assert _finish(again)["status"] == "Completed"
    steps = _steps(again)
    for name in "ABCD":
        assert steps[name]["state"] == "reused"
        origin = ran[name]["run_id"]
        assert steps[name]["status"] == f"Completed (reused from run {origin})"
        assert steps[name]["outputs"] == ran[name]["outputs"]
        child = again.find_step_run(name)
        assert child.get_status() == "Completed"
        assert child.get_properties()["pipeline.reused_from"] == origin
    assert again.get_properties()["pipeline.reused_steps"] == "4"

    changed = exp.submit(
        Pipeline(module_ws, _diamond(module_ws, tag)), pipeline_parameters={"cname": "C2"}
    )
    assert _finish(changed)["status"] == "Completed"
    steps = _steps(changed)
    assert [steps[n]["state"] for n in "ABCD"] == ["reused", "reused", "completed", "completed"]
    assert steps["C"]["reason"] == "parameter cname changed ('C' -> 'C2')"
    assert steps["D"]["reason"] == "input c changed"
    props = changed.find_step_run("C").get_properties()
    assert props["pipeline.reason"] == "parameter cname changed ('C' -> 'C2')"


def test_a_failed_step_cancels_what_depends_on_it(module_ws: Workspace, tmp_path: Path) -> None:
    flag = tmp_path / "fail"
    flag.touch()
    tag = uuid.uuid4().hex
    exp = Experiment(module_ws, "failures")
    steps = _diamond(module_ws, tag, fail_if=str(flag), c_sleep=30)
    run = exp.submit(Pipeline(module_ws, steps))
    details = _finish(run)
    assert details["status"] == "Failed"
    assert "B" in details["error"]["message"]
    got = _steps(run)
    assert got["B"]["state"] == "failed"
    assert got["D"]["status"] == "Canceled: upstream step B failed."
    assert run.find_step_run("D").get_status() == "Canceled"
    # Without continue_on_step_failure the unrelated branch is stopped too.
    assert got["C"]["state"] == "canceled"
    assert run.find_step_run("C").get_status() == "Canceled"

    steps = _diamond(module_ws, tag, fail_if=str(flag), c_sleep=0.5, a_reuse=False)
    run = exp.submit(Pipeline(module_ws, steps), continue_on_step_failure=True)
    assert _finish(run)["status"] == "Failed"
    got = _steps(run)
    assert [got[n]["state"] for n in "ABCD"] == ["completed", "failed", "completed", "canceled"]
    assert got["D"]["reason"] == "Canceled: upstream step B failed."

    # Re-submitted once the cause is gone: only what did not complete runs again
    # (A completed there, so it is taken over though it does not allow reuse).
    flag.unlink()
    again = run.resubmit()
    assert _finish(again)["status"] == "Completed"
    fixed = _steps(again)
    assert [fixed[n]["state"] for n in "ABCD"] == ["reused", "completed", "reused", "completed"]
    assert fixed["A"]["reused_from"] == got["A"]["run_id"]


def test_cancel_stops_every_running_step(module_ws: Workspace) -> None:
    src = src_dir(module_ws)
    x, y = PipelineData("x"), PipelineData("y")
    tag = uuid.uuid4().hex
    steps = [
        PythonScriptStep("slow1", "step.py", src, ["--tag", tag, "--sleep", 60, "--out", x],
                         outputs=[x]),
        PythonScriptStep("slow2", "step.py", src, ["--tag", tag, "--sleep", 60]),
        PythonScriptStep("after", "step.py", src, ["--tag", tag, "--inp", x, "--out", y],
                         outputs=[y]),
    ]  # fmt: skip
    run = Experiment(module_ws, "cancel").submit(Pipeline(module_ws, steps))
    wait_until(
        lambda: all(_steps(run)[n]["status"] == "Running" for n in ("slow1", "slow2")),
        what="both slow steps running",
    )
    run.cancel()
    assert _finish(run, 60)["status"] == "Canceled"
    got = _steps(run)
    for name in ("slow1", "slow2"):
        assert run.find_step_run(name).get_status() == "Canceled"
    assert got["after"]["state"] == "canceled"


def test_a_pipeline_carries_on_after_a_restart(module_ws: Workspace) -> None:
    transport = module_ws.transport
    assert isinstance(transport, EmbeddedTransport)
    services = transport.services
    src = src_dir(module_ws)
    x = PipelineData("x")
    tag = uuid.uuid4().hex
    steps = [
        PythonScriptStep("first", "step.py", src, ["--tag", tag, "--name", "F", "--sleep", 1,
                                                   "--out", x], outputs=[x]),
        PythonScriptStep("second", "step.py", src, ["--tag", tag, "--name", "S", "--inp", x]),
        PythonScriptStep("third", "step.py", src, ["--tag", tag, "--name", "T", "--inp", x]),
    ]  # fmt: skip
    run = Experiment(module_ws, "restart").submit(Pipeline(module_ws, steps))
    wait_until(lambda: _steps(run)["first"]["status"] == "Running", what="the first step")
    services.stop_workers()  # the process driving the pipeline goes away
    first = run.find_step_run("first")
    wait_until(lambda: first.get_status() == "Completed", what="the first step's job to end")
    stored = services.pipelines.store.get_run(module_ws.name, run.id)
    # ... right after it claimed the second step and before it submitted its job
    assert services.pipelines.store.move_step(stored.id, "second", "waiting", state="submitting")
    assert run.get_status() == "Running"

    transport.host_jobs()  # a new driver takes over
    assert _finish(run)["status"] == "Completed"
    got = _steps(run)
    assert [got[n]["state"] for n in ("first", "second", "third")] == ["completed"] * 3
    assert len(list(run.get_children())) == 3


def test_a_step_skipped_across_a_restart_keeps_one_run(
    module_ws: Workspace, tmp_path: Path
) -> None:
    transport = module_ws.transport
    assert isinstance(transport, EmbeddedTransport)
    services = transport.services
    src = src_dir(module_ws)
    flag = tmp_path / "fail"
    flag.touch()
    x = PipelineData("x")
    tag = uuid.uuid4().hex
    steps = [
        PythonScriptStep("first", "step.py", src, ["--tag", tag, "--name", "F", "--sleep", 1,
                                                   "--fail-if", str(flag), "--out", x],
                         outputs=[x]),
        PythonScriptStep("second", "step.py", src, ["--tag", tag, "--name", "S", "--inp", x]),
    ]  # fmt: skip
    run = Experiment(module_ws, "restart-skip").submit(Pipeline(module_ws, steps))
    wait_until(lambda: _steps(run)["first"]["status"] == "Running", what="the first step")
    services.stop_workers()
    first = run.find_step_run("first")
    wait_until(lambda: first.get_status() == "Failed", what="the first step's job to fail")
    # ... the driver made the second step's skipped run, then stopped before recording it
    exp_id = services.pipelines.store.get_run(module_ws.name, run.id).experiment_id
    services.tracking.create_run(
        module_ws.name,
        exp_id,
        display_name="second",
        parent_id=run.id,
        kind="skipped",
        status="NotStarted",
        tags={STEP_TAG: "second"},
    )

    transport.host_jobs()  # a new driver takes over
    assert _finish(run)["status"] == "Failed"
    got = _steps(run)
    assert got["second"]["state"] == "canceled"
    assert got["second"]["reason"] == "Canceled: upstream step first failed."
    seconds = [c for c in run.get_children() if c.get_tags().get(STEP_TAG) == "second"]
    assert [c.id for c in seconds] == [got["second"]["run_id"]]
    assert seconds[0].get_status() == "Canceled"
