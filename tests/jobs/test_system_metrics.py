"""System metrics: what the machine and a run's processes did, sampled while it runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server
from tests.jobs.conftest import wait_until, write_script
from typer.testing import CliRunner

from cumulo import Experiment, ScriptRunConfig, Workspace
from cumulo.cli.main import app
from cumulo.compute.runner import run_job
from cumulo.compute.sysmetrics import Sampler, visible_gpus
from cumulo.core import system_metrics as names
from cumulo.core.errors import InvalidInput
from cumulo.core.settings import Settings
from cumulo.sdk.http import HttpChannel, HttpTransport

# Burns one core for a while, then holds more and more memory.
PHASES = """
import time
end = time.monotonic() + 2.0
while time.monotonic() < end:
    pass
held = []
for _ in range(12):
    held.append(bytearray(8_000_000))
    time.sleep(0.15)
"""


@pytest.fixture
def ws() -> Workspace:
    return Workspace.create("sysmetrics")


@pytest.mark.slow
def test_a_jobs_samples_follow_its_cpu_then_its_memory_at_its_interval(
    ws: Workspace, tmp_path: Path
) -> None:
    write_script(tmp_path / "src", "phases.py", PHASES)
    config = ScriptRunConfig(tmp_path / "src", "phases.py", system_metrics_interval=0.25)
    run = Experiment(ws, "sys").submit(config)
    run.wait_for_completion(show_output=False, raise_on_error=True)

    assert names.PROCESS_CPU not in run.get_metrics()  # never among the user's metrics
    found = run.get_system_metrics()
    cpu = run.get_metric_history(names.PROCESS_CPU)
    rss = found[names.PROCESS_RSS]
    assert cpu["step"] == list(range(len(cpu["step"]))), "a sample is missing"
    assert len(cpu["step"]) >= 4
    # Never sooner than the interval after the one before.
    gaps = [b - a for a, b in zip(cpu["timestamp"], cpu["timestamp"][1:], strict=False)]
    assert min(gaps) >= 249, gaps
    # The busy phase shows in the process tree's CPU (100 = one core; how much of a core
    # it gets depends on what else this machine runs), the sleeping one hardly does; the
    # later phase shows in its resident memory: 96 MB held by the end.
    busy, quiet = max(cpu["value"][:4]), min(cpu["value"][4:])
    assert busy > 10 and busy > 3 * quiet, cpu["value"]
    assert max(rss) - min(rss) > 50, rss
    for name in (names.CPU, names.MEMORY_AVAILABLE, names.DISK_AVAILABLE, names.DISK_WRITE):
        assert name in found, sorted(found)
    assert found[names.MEMORY_AVAILABLE][-1] > 0


@pytest.mark.slow
def test_the_off_switch_per_job_and_per_workspace(ws: Workspace, tmp_path: Path) -> None:
    write_script(tmp_path / "src", "wait.py", "import time\ntime.sleep(1.0)\n")
    off = ScriptRunConfig(tmp_path / "src", "wait.py", system_metrics_interval=0)
    run = Experiment(ws, "sys").submit(off)
    run.wait_for_completion(show_output=False, raise_on_error=True)
    assert run.get_system_metrics() == {}

    settings = Settings.load(environ={"CUMULO_SYSTEM_METRICS_INTERVAL": "off"})
    assert settings.system_metrics_interval == 0
    assert Settings.load(environ={}).system_metrics_interval == 10
    with pytest.raises(ValueError, match="CUMULO_SYSTEM_METRICS_INTERVAL"):
        Settings.load(environ={"CUMULO_SYSTEM_METRICS_INTERVAL": "0.01"})
    with pytest.raises(InvalidInput, match="system_metrics_interval"):
        Experiment(ws, "sys").submit(
            ScriptRunConfig(tmp_path / "src", "wait.py", system_metrics_interval=-1)
        )


def test_an_interactive_run_samples_from_a_thread_until_it_ends(ws: Workspace) -> None:
    with Experiment(ws, "sys").start_logging(system_metrics=0.1) as run:
        run.log("loss", 1.0)
        wait_until(lambda: _samples(run) >= 2, 30, "samples")
    taken = _samples(run)
    time.sleep(0.4)
    assert _samples(run) == taken  # the thread stopped with the run
    assert run.get_metrics() == {"loss": 1.0}
    assert names.PROCESS_RSS in run.get_system_metrics()
    # The command line shows them apart from the run's own, with their trend.
    command = ["run", "metrics", run.id[:8], "-w", ws.name]
    shown = CliRunner().invoke(app, [*command, "--system", "--json"])
    assert shown.exit_code == 0, shown.output
    series = json.loads(shown.output)["series"]
    assert names.PROCESS_RSS in series and all(names.known(k) for k in series)
    assert len(series[names.PROCESS_RSS]["value"]) == taken
    table = CliRunner().invoke(app, [*command, "--system"]).output
    assert any(c in table for c in "▁▂▃▄▅▆▇█") and "loss" not in table
    own = json.loads(CliRunner().invoke(app, [*command, "--json"]).output)["series"]
    assert list(own) == ["loss"]


def _samples(run: Any) -> int:
    return len(run.get_metric_history(names.PROCESS_RSS)["step"])


def test_system_names_are_reserved(ws: Workspace) -> None:
    run = Experiment(ws, "sys").start_logging()
    with pytest.raises(InvalidInput, match="system metrics"):
        run.log(names.CPU, 3.0)  # the user's own code never logs them
    tracking = ws.transport.tracking
    # Names of MLflow's system metrics are taken, as an MLflow client sends them ...
    mlflow_names = [names.CPU, names.gpu(0, "utilization_percentage"), names.DISK_PERCENT]
    columns = {"key": mlflow_names, "value": [1.0] * 3, "step": [0] * 3, "timestamp": [1] * 3}
    tracking.log_batch(ws.name, run.id, metrics=columns)
    # ... any other name under system/ is refused.
    with pytest.raises(InvalidInput, match="reserved for system metrics"):
        tracking.log_batch(ws.name, run.id, metrics=[("system/loss", 1.0, 0, 1)])
    run.complete()
    assert sorted(run.get_system_metrics()) == sorted(mlflow_names)


@pytest.mark.slow
def test_no_sample_is_lost_while_the_server_is_killed(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_cumulo_server(home, port)
    try:
        http = HttpTransport(url)
        http.tracking.create_workspace("sys")
        run = Experiment(Workspace.connect(url, "sys"), "sys").start_logging()
        workdir = tmp_path / "work"
        write_script(workdir, "job.py", "import time\ntime.sleep(4)\n")
        spec = {
            "run_id": run.id,
            "workspace": "sys",
            "script": "job.py",
            "system_metrics_interval": 0.2,
            "delivery_seconds": 60,
        }
        results: list[dict[str, Any]] = []
        channel = HttpChannel(url, None, "sys", run.id)
        runner = threading.Thread(target=lambda: results.append(run_job(spec, channel, workdir)))
        runner.start()

        def stored() -> int:
            return len(http.tracking.get_metric_history("sys", run.id, names.PROCESS_RSS)["step"])

        wait_until(lambda: stored() >= 3, 60, "the first samples")
        server.send_signal(signal.SIGKILL)  # no shutdown, no goodbye
        server.wait()
        down_at = time.time_ns() // 1_000_000
        time.sleep(1.5)
        up_at = time.time_ns() // 1_000_000
        server = start_cumulo_server(home, port)
        runner.join(120)
        assert results and results[0]["status"] == "Completed", results
        assert results[0]["error"] is None
        history = http.tracking.get_metric_history("sys", run.id, names.PROCESS_RSS)
        assert sorted(history["step"]) == list(range(len(history["step"])))  # each one, once
        assert any(down_at <= at <= up_at for at in history["timestamp"])
    finally:
        stop_cumulo_server(server)


# ------------------------------------------------------------------ sampler
class _Device:
    def __init__(self, index: int) -> None:
        self.index = index


def fake_nvml(count: int) -> types.SimpleNamespace:
    """The calls of ``pynvml`` the sampler makes, answering for ``count`` GPUs."""

    def handle(index: int) -> _Device:
        if index >= count:
            raise RuntimeError("NVML_ERROR_INVALID_ARGUMENT")
        return _Device(index)

    return types.SimpleNamespace(
        NVML_TEMPERATURE_GPU=0,
        nvmlDeviceGetCount=lambda: count,
        nvmlDeviceGetHandleByIndex=handle,
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=30 + h.index),
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(
            used=2_000_000_000, total=8_000_000_000
        ),
        nvmlDeviceGetTemperature=lambda h, sensor: 60 + h.index,
        nvmlDeviceGetPowerUsage=lambda h: 150_000,  # milliwatts
        nvmlDeviceGetEnforcedPowerLimit=lambda h: 300_000,
        nvmlShutdown=lambda: None,
    )


def test_the_sampler_reads_the_gpus_it_is_given_through_nvml() -> None:
    sampler = Sampler(folder=".", visible="1", nvml=fake_nvml(2))
    out = sampler.sample()
    gpu = {k: v for k, v in out.items() if k.startswith("system/gpu_")}
    assert gpu == {
        "system/gpu_1_utilization_percentage": 31.0,
        "system/gpu_1_memory_usage_megabytes": 2000.0,
        "system/gpu_1_memory_total_megabytes": 8000.0,
        "system/gpu_1_memory_usage_percentage": 25.0,
        "system/gpu_1_temperature_celsius": 61.0,
        "system/gpu_1_power_usage_watts": 150.0,
        "system/gpu_1_power_usage_percentage": 50.0,
    }
    assert all(names.known(k) for k in out)
    assert visible_gpus(None, 2) == [0, 1]
    assert visible_gpus("", 2) == []
    assert visible_gpus("GPU-5d7e", 2) == [0, 1]  # a UUID: every GPU rather than a guess
    without = Sampler(folder=".", nvml=False).sample()
    assert not [k for k in without if k.startswith("system/gpu_")]


def test_the_sampler_counts_the_whole_process_tree() -> None:
    # A parent that waits on a child holding 60 MB: the tree holds both.
    code = (
        "import subprocess, sys; subprocess.run([sys.executable, '-c', "
        "'import time; x = bytearray(60_000_000); time.sleep(30)'])"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        sampler = Sampler(parent.pid, folder=".", nvml=False)
        rss = wait_until(
            lambda: (v := sampler.sample()[names.PROCESS_RSS]) > 60 and v, 30, "the child's memory"
        )
        assert rss > 60
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
