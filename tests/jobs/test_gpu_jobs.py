"""Jobs that ask for GPUs: each GPU to one job at a time, a job waits with its reason,
and a request no target can meet is refused at submit.

This machine has no GPU: the tests declare an inventory with ``CUMULO_LOCAL_GPUS``
(the setting for a machine whose GPUs NVML cannot see), which the scheduler then
hands out as it would GPUs NVML found.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.jobs.conftest import wait_until, write_script

from cumulo import (
    ComputeTarget,
    Experiment,
    LocalPool,
    RayCluster,
    Resources,
    ScriptRunConfig,
    Workspace,
)
from cumulo.compute.gpus import GpuLedger, gpus_here
from cumulo.core.errors import InvalidInput
from cumulo.core.jobs import QUEUE_REASON_TAG
from cumulo.core.settings import Settings

# Says which GPUs it was given, then holds them until its gate file appears.
HOLD = """
import os, sys, time
print("visible:", repr(os.environ.get("CUDA_VISIBLE_DEVICES")), flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
"""


@pytest.fixture
def ws(monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("CUMULO_LOCAL_GPUS", "1")  # one GPU, declared
    return Workspace.create("gpus")


@pytest.mark.slow
@pytest.mark.parametrize("target", ["local", "pool"])
def test_two_one_gpu_jobs_on_a_one_gpu_machine_run_one_after_the_other(
    ws: Workspace, tmp_path: Path, target: str
) -> None:
    if target == "pool":
        ComputeTarget.create(ws, "pool", LocalPool(max_nodes=3, idle_seconds_before_scaledown=5))
    src = tmp_path / "src"
    write_script(src, "hold.py", HOLD)
    exp = Experiment(ws, "gpu")

    def submit(gate: str, gpus: int):  # type: ignore[no-untyped-def]
        config = ScriptRunConfig(
            src,
            "hold.py",
            arguments=[str(tmp_path / gate)],
            compute_target=target,
            resources=Resources(gpus=gpus),
            system_metrics_interval=0,
        )
        return exp.submit(config)

    first = submit("first", 1)
    wait_until(lambda: "visible: '0'" in first.get_logs(), 90, "the first job to start")
    second = submit("second", 1)
    wait_until(
        lambda: second.refresh().info.tags.get(QUEUE_REASON_TAG) == "waiting for 1 GPU",
        60,
        "the second job's reason",
    )
    # A job that asks for no GPU goes ahead meanwhile, and sees none.
    cpu = submit("cpu", 0)
    wait_until(lambda: "visible: ''" in cpu.get_logs(), 90, "the CPU job to start")
    (tmp_path / "cpu").touch()
    assert cpu.wait_for_completion(show_output=False)["status"] == "Completed"
    assert second.get_status() == "Queued"
    assert "Queued, waiting for 1 GPU" in second.get_logs()

    (tmp_path / "first").touch()  # the first job ends: its GPU goes to the second
    assert first.wait_for_completion(show_output=False)["status"] == "Completed"
    wait_until(lambda: "visible: '0'" in second.get_logs(), 90, "the second job to start")
    assert QUEUE_REASON_TAG not in second.refresh().info.tags
    (tmp_path / "second").touch()
    details = second.wait_for_completion(show_output=False)
    assert details["status"] == "Completed"
    assert ws.transport.jobs.get_job(ws.name, second.id).attempts == 1  # waiting is no retry
    first_end = first.refresh().info.ended_at
    second_start = second.refresh().info.started_at
    assert first_end is not None and second_start is not None and second_start >= first_end


def test_a_request_no_target_can_meet_is_refused_at_submit(ws: Workspace, tmp_path: Path) -> None:
    write_script(tmp_path / "src", "train.py", "print('never')\n")
    exp = Experiment(ws, "gpu")
    ComputeTarget.create(ws, "ray", RayCluster.managed(num_cpus=1, num_gpus=0))
    for target, resources, said in [
        ("local", Resources(gpus=2), "2 GPUs, and it has 1"),
        ("local", {"cpus": 100_000}, "100000 CPUs"),
        ("local", {"memory_gb": 1_000_000}, "MiB of memory"),
        ("ray", Resources(gpus=1), "1 GPU, and it has 0"),
    ]:
        config = ScriptRunConfig(
            tmp_path / "src", "train.py", compute_target=target, resources=resources
        )
        with pytest.raises(InvalidInput, match="can never run it") as refused:
            exp.submit(config)
        assert said in refused.value.message
    assert list(exp.get_runs()) == []  # nothing was queued


def test_the_ledger_gives_each_gpu_to_one_job_attempt(tmp_path: Path) -> None:
    ledger = GpuLedger(tmp_path)
    active = {("a", 1), ("b", 1)}

    def alive(run: str, attempt: int) -> bool:
        return (run, attempt) in active

    assert ledger.take("a", 1, 1, (0, 1), alive) == (0,)
    assert ledger.take("b", 1, 1, (0, 1), alive) == (1,)
    assert ledger.take("c", 1, 1, (0, 1), alive) is None  # both held
    assert ledger.take("a", 1, 1, (0, 1), alive) == (0,)  # asking again: the same one
    active.discard(("a", 1))  # a ended (or was lost): its GPU is free at the next look
    active.add(("c", 1))
    assert ledger.take("c", 1, 1, (0, 1), alive) == (0,)
    assert ledger.held_by("c", 1) == (0,) and ledger.held_by("a", 1) == ()
    assert GpuLedger(tmp_path).in_use() == {0: "c", 1: "b"}  # kept on disk


def test_the_local_gpu_inventory_setting() -> None:
    assert Settings.load(environ={"CUMULO_LOCAL_GPUS": "2"}).local_gpus == (0, 1)
    assert Settings.load(environ={"CUMULO_LOCAL_GPUS": "0"}).local_gpus == ()
    assert Settings.load(environ={"CUMULO_LOCAL_GPUS": "1,3"}).local_gpus == (1, 3)
    assert Settings.load(environ={"CUMULO_LOCAL_GPUS": "1,"}).local_gpus == (1,)
    assert Settings.load(environ={}).local_gpus is None
    with pytest.raises(ValueError, match="CUMULO_LOCAL_GPUS"):
        Settings.load(environ={"CUMULO_LOCAL_GPUS": "0,0"})
    assert Resources.parse({"memory_gb": 1.5}).memory_mb == 1536


def test_an_attached_machine_reports_the_gpus_it_declares(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUMULO_LOCAL_GPUS", "1,3")
    assert gpus_here() == 2
    monkeypatch.setenv("CUMULO_LOCAL_GPUS", "0")
    assert gpus_here() == 0
