"""The managed pool: a queue in order with priorities, at most N at once, scale down."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.jobs.conftest import wait_until, write_script

from cumulo import ComputeTarget, Experiment, LocalPool, Run, ScriptRunConfig, Workspace


def _first_left_queue(run: Run) -> int:
    return next(s.at for s in run.refresh().info.status_history if s.status == "Preparing")


def _ended(run: Run) -> int:
    return run.refresh().info.ended_at or 0


@pytest.mark.slow
def test_fifty_jobs_through_two_nodes_in_order(ws: Workspace, tmp_path: Path) -> None:
    pool = ComputeTarget.create(ws, "pool", LocalPool(max_nodes=2, idle_seconds_before_scaledown=1))
    src = tmp_path / "src"
    write_script(src, "job.py", "import sys\nprint('job', sys.argv[1])\n")
    exp = Experiment(ws, "many")
    runs = [
        exp.submit(ScriptRunConfig(src, "job.py", arguments=[i], compute_target="pool"))
        for i in range(50)
    ]
    for run in runs:
        assert run.wait_for_completion(show_output=False, timeout=300)["status"] == "Completed"
    for i, run in enumerate(runs):
        assert f"job {i}\n" in run.get_logs()  # nothing lost, nothing mixed up
    starts = [_first_left_queue(r) for r in runs]
    ends = [_ended(r) for r in runs]
    # First in, first out: with two nodes, job i+2 cannot start before job i has.
    for i in range(len(runs) - 2):
        assert starts[i] <= starts[i + 2], f"job {i + 2} started before job {i}"
    # Never more than two at once.
    for i, start in enumerate(starts):
        overlapping = sum(1 for j in range(len(runs)) if starts[j] <= start < ends[j])
        assert overlapping <= 2, f"{overlapping} jobs ran at once when job {i} started"
    # Idle nodes scale down to zero.
    wait_until(lambda: pool.get_status()["current_node_count"] == 0, what="nodes to stop")


def test_queue_priorities_and_status(ws: Workspace, tmp_path: Path) -> None:
    pool = ComputeTarget.create(
        ws, "solo", LocalPool(max_nodes=1, idle_seconds_before_scaledown=30)
    )
    gate = tmp_path / "gate"
    src = tmp_path / "src"
    write_script(
        src,
        "wait.py",
        "import os, sys, time\n"
        "while not os.path.exists(sys.argv[1]):\n"
        "    time.sleep(0.05)\n"
        "print('done', sys.argv[2])\n",
    )
    exp = Experiment(ws, "prio")

    def submit(name: str, priority: int = 0) -> Run:
        return exp.submit(
            ScriptRunConfig(
                src, "wait.py", arguments=[gate, name], compute_target="solo", priority=priority
            )
        )

    blocker = submit("blocker")
    wait_until(lambda: blocker.get_status() == "Running", what="the first job to run")
    low_a, low_b, urgent = submit("a"), submit("b"), submit("urgent", priority=5)
    status = pool.get_status()
    assert status["current_node_count"] == 1
    assert status["node_state_counts"] == {"busy": 1}
    assert status["queue"] == [urgent.id, low_a.id, low_b.id]
    assert status["active"] == [blocker.id]
    gate.write_text("go")
    for run in (blocker, low_a, low_b, urgent):
        assert run.wait_for_completion(show_output=False)["status"] == "Completed"
    order = sorted([low_a, low_b, urgent], key=_first_left_queue)
    assert order == [urgent, low_a, low_b]


def test_a_queued_job_is_canceled_before_it_starts(ws: Workspace, tmp_path: Path) -> None:
    ComputeTarget.create(ws, "solo", LocalPool(max_nodes=1, idle_seconds_before_scaledown=30))
    gate = tmp_path / "gate"
    src = tmp_path / "src"
    write_script(
        src,
        "wait.py",
        "import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.05)\n",
    )
    exp = Experiment(ws, "cancel-queued")
    config = ScriptRunConfig(src, "wait.py", arguments=[gate], compute_target="solo")
    first = exp.submit(config)
    wait_until(lambda: first.get_status() == "Running", what="the first job to run")
    second = exp.submit(config)
    second.cancel()
    details = second.wait_for_completion(show_output=False)
    assert details["status"] == "Canceled"
    assert "before it started" in details["error"]["message"]
    assert next(s["status"] for s in details["statusHistory"]) == "Queued"
    assert "Running" not in [s["status"] for s in details["statusHistory"]]
    gate.write_text("go")
    assert first.wait_for_completion(show_output=False)["status"] == "Completed"


def test_targets_are_listed_and_deleted(ws: Workspace) -> None:
    ComputeTarget.create(ws, "p1", LocalPool(max_nodes=3, idle_seconds_before_scaledown=5))
    assert sorted(ws.compute_targets) == ["local", "p1"]
    p1 = ws.compute_targets["p1"]
    assert p1.kind == "pool"
    assert p1.config == {"max_nodes": 3, "idle_seconds_before_scaledown": 5.0}
    p1.delete()
    assert sorted(t.name for t in ComputeTarget.list(ws)) == ["local"]
