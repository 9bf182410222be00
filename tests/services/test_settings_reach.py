"""Each setting read from the environment by ``Settings`` reaches the code that uses it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cumulo import Experiment, ScriptRunConfig, Workspace
from cumulo.compute.base import JOB_FOLDER
from cumulo.compute.runner import run_job
from cumulo.core.errors import Unavailable
from cumulo.core.settings import Settings
from cumulo.services.agent_link import ServiceNodeQueue
from cumulo.services.context import open_services
from cumulo.services.scheduler import Endpoint, job_env
from cumulo.services.supervisor import Supervisor


def _services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **variables: str) -> Any:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return open_services(Settings.load(home=tmp_path / "home"))


def test_lease_seconds_reach_the_scheduler_and_pool_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = _services(tmp_path, monkeypatch, CUMULO_LEASE_SECONDS="2.5")
    assert services.scheduler.ensure_started().lease_ms == 2500
    node = ServiceNodeQueue(services.jobs, "default", "pool", "node", Endpoint())
    assert node.lease_ms == 2500


def test_the_environment_cache_reaches_builds_and_agents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "shared-envs"
    services = _services(tmp_path, monkeypatch, CUMULO_ENV_CACHE=str(cache))
    assert services.environments.cache == cache
    _script, agent = job_env(services.jobs, "run", "ws", "local", Endpoint())
    assert agent["CUMULO_ENV_CACHE"] == str(cache)


def test_the_snapshot_limit_reaches_the_snapshot_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = _services(tmp_path, monkeypatch, CUMULO_SNAPSHOT_MAX_MB="2")
    assert services.jobs.snapshots.max_bytes == 2 * 1024 * 1024


def test_turning_the_preloader_off_reaches_the_supervisor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = _services(tmp_path, monkeypatch, CUMULO_SERVING_PRELOAD="0")
    assert Supervisor(services.hosting).preloading is False
    other = open_services(Settings.load(home=tmp_path / "other", environ={}))
    assert Supervisor(other.hosting).preloading is True


def test_delivery_seconds_reach_the_jobs_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUMULO_DELIVERY_SECONDS", "7")
    ws = Workspace.create("deliver", home=tmp_path / "home")
    src = tmp_path / "src"
    src.mkdir()
    (src / "job.py").write_text("print('done')\n")
    run = Experiment(ws, "deliver").submit(ScriptRunConfig(src, "job.py"))
    assert run.wait_for_completion(show_output=False)["status"] == "Completed"
    specs = list((tmp_path / "home" / "jobs" / ws.name).glob(f"{run.id}-*/{JOB_FOLDER}/spec.json"))
    assert [json.loads(path.read_text())["delivery_seconds"] for path in specs] == [7.0]


class _StoreAway:
    """A runner's channel to a store that never answers: no log line is delivered."""

    def __init__(self) -> None:
        self.final: tuple[str, dict[str, Any] | None] | None = None

    def get_status(self) -> str:
        return "Running"

    def set_status(self, status: str, error: dict[str, Any] | None = None) -> None:
        self.final = (status, error)

    def append_logs(self, chunks: list[tuple[str, str, int]]) -> None:
        raise Unavailable("the store is away")

    def upload_file(self, name: str, path: Path) -> None:
        raise Unavailable("the store is away")


def test_the_runner_gives_up_delivering_after_its_specs_delivery_seconds(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "job.py").write_text("print('a line nobody takes')\n")
    spec = {
        "run_id": "r1",
        "workspace": "ws",
        "script": "job.py",
        "python": sys.executable,
        "env": {},
        "delivery_seconds": 0.5,
    }
    channel = _StoreAway()
    started = time.monotonic()
    result = run_job(spec, channel, workdir)
    assert time.monotonic() - started < 60  # not the default 300 s
    assert channel.final is not None
    status, error = channel.final
    assert status == "Completed" and result["status"] == "Completed"
    assert error is not None and error["undelivered_log_lines"] >= 1
