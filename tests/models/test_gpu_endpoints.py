"""Endpoints whose replicas ask for GPUs: each replica takes its own from the ledger the
jobs take theirs from, and a deployment asking more than the machine has is refused.

This machine has no GPU: the tests declare one with ``CUMULO_LOCAL_GPUS``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.jobs.conftest import wait_until, write_script
from tests.models.conftest import make_script_model

from cumulo import (
    DeploymentConfig,
    Endpoint,
    Experiment,
    InferenceConfig,
    Model,
    Resources,
    ScriptRunConfig,
    Workspace,
)
from cumulo.compute.gpus import GpuLedger
from cumulo.core.errors import InvalidInput
from cumulo.core.jobs import QUEUE_REASON_TAG

SCORE = """
import os

def init():
    pass

def run(raw_data):
    return {"visible": os.environ.get("CUDA_VISIBLE_DEVICES")}
"""

HOLD = """
import os, sys, time
print("visible:", repr(os.environ.get("CUDA_VISIBLE_DEVICES")), flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
"""


@pytest.fixture
def ws(monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("CUMULO_LOCAL_GPUS", "1")  # one GPU, declared
    return Workspace.create("gpu-serving")


def _deploy(ws: Workspace, tmp_path: Path, name: str, **config: object) -> Endpoint:
    code = tmp_path / "serve"
    write_script(code, "score.py", SCORE)
    model = Model.register(ws, make_script_model(tmp_path / "weights", "v1"), "scaler")
    return Model.deploy(
        ws,
        name,
        [model],
        InferenceConfig(entry_script="score.py", source_directory=code),
        DeploymentConfig(**config),  # type: ignore[arg-type]
        show_output=False,
        timeout=120,
    )


def test_a_deployment_asking_more_gpus_than_the_machine_has_is_refused(
    ws: Workspace, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="can never run it") as refused:
        _deploy(ws, tmp_path, "too-big", resources=Resources(gpus=2))
    assert "Each replica asks for 2 GPUs, and it has 1" in refused.value.message
    with pytest.raises(InvalidInput, match=r"resources\.gpus"):
        DeploymentConfig(resources={"gpus": -1})
    assert GpuLedger(ws.transport.jobs.home).in_use() == {}  # no replica started


def test_replicas_and_jobs_share_the_ledger_and_a_dead_holder_frees_its_gpu(
    tmp_path: Path,
) -> None:
    ledger = GpuLedger(tmp_path)
    jobs: set[tuple[str, int]] = set()

    def alive(run: str, attempt: int) -> bool:
        return (run, attempt) in jobs

    assert ledger.take_for_process("replica a 0", 1, (0, 1), alive) == (0,)
    jobs.add(("job", 1))
    assert ledger.take("job", 1, 1, (0, 1), alive) == (1,)
    assert ledger.take_for_process("replica a 1", 1, (0, 1), alive) is None  # both held
    assert ledger.take_for_process("replica a 0", 1, (0, 1), alive) == (0,)  # its own again
    ledger.release("replica a 0")
    assert ledger.take_for_process("replica a 1", 1, (0, 1), alive) == (0,)
    # A replica whose supervisor process is gone holds nothing at the next look.
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    pid = int(gone.stdout)
    ledger.path.write_text(f'{{"0": {{"holder": "replica b 0", "pid": {pid}}}}}')
    assert ledger.take("job", 1, 1, (0,), alive) == (0,)
    assert GpuLedger(tmp_path).in_use() == {0: "job"}


@pytest.mark.slow
def test_a_replica_holds_its_gpu_until_it_stops_and_a_job_waits_for_it(
    ws: Workspace, tmp_path: Path
) -> None:
    endpoint = _deploy(ws, tmp_path, "on-gpu", resources=Resources(gpus=1))
    assert endpoint.run({"data": []}) == {"visible": "0"}
    ledger = GpuLedger(ws.transport.jobs.home)
    assert list(ledger.in_use()) == [0]

    src = tmp_path / "src"
    write_script(src, "hold.py", HOLD)
    job = Experiment(ws, "gpu").submit(
        ScriptRunConfig(
            src,
            "hold.py",
            arguments=[str(tmp_path / "gate")],
            resources=Resources(gpus=1),
            system_metrics_interval=0,
        )
    )
    wait_until(
        lambda: job.refresh().info.tags.get(QUEUE_REASON_TAG) == "waiting for 1 GPU",
        60,
        "the job to wait for the replica's GPU",
    )
    endpoint.delete()  # its replica stops and lets its GPU go
    wait_until(lambda: "visible: '0'" in job.get_logs(), 90, "the job to get the GPU")
    (tmp_path / "gate").touch()
    assert job.wait_for_completion(show_output=False)["status"] == "Completed"
