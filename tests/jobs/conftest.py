"""Fixtures of the jobs suite: a workspace, each compute target, a real Ray head."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cumulo import ComputeTarget, LocalPool, RayCluster, Workspace
from cumulo.compute import processes
from cumulo.services.context import close_all

TARGETS = ["local", "pool", pytest.param("ray", marks=pytest.mark.slow)]


def wait_until(check: Callable[[], Any], timeout: float = 90.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (generous: CI has 2 cores)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(autouse=True)
def _stop_jobs() -> Iterator[None]:
    """Stop this test's schedulers, pool nodes and leftover job processes."""
    yield
    close_all(stop_nodes=True)
    with processes._lock:
        children = list(processes._children.values())
        processes._children.clear()
    for proc in children:
        try:
            proc.wait(10)  # an agent whose run has ended is finishing its last upload
        except subprocess.TimeoutExpired:
            processes.end_groups([proc.pid], grace=2.0)
            proc.wait(10)


@pytest.fixture
def ws() -> Workspace:
    return Workspace.create(f"ws-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="session")
def ray_head() -> Iterator[str]:
    pytest.importorskip("ray")
    from cumulo.compute.ray import ManagedRayHead

    head = ManagedRayHead(num_cpus=2, num_gpus=1).start()
    try:
        yield head.address
    finally:
        head.stop()


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, ws: Workspace) -> str:
    """The name of a compute target of each kind, in ``ws``."""
    if request.param == "local":
        return "local"
    if request.param == "pool":
        ComputeTarget.create(ws, "pool", LocalPool(max_nodes=2, idle_seconds_before_scaledown=2))
        return "pool"
    address = request.getfixturevalue("ray_head")
    ComputeTarget.create(ws, "ray", RayCluster(address=address))
    return "ray"


def write_script(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body)
    return path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return state.exists() and state.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
