"""Fixtures of the jobs suite: a workspace, each compute target, a real Ray head, a real sshd."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import free_port
from tests.jobs.sshd import Sshd, local_sshd, unavailable

from cumulo import ComputeTarget, LocalPool, RayCluster, SshMachine, Workspace
from cumulo.compute import processes
from cumulo.services.context import Services, close_all

TARGETS = [
    "local",
    "pool",
    pytest.param("ray", marks=pytest.mark.slow),
    pytest.param("ssh", marks=pytest.mark.slow),
]


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
def ws(request: pytest.FixtureRequest) -> Workspace:
    if _target_of(request) == "ssh":
        # A job on an SSH machine reports to a server over HTTP: its workspace is served.
        return request.getfixturevalue("served_ws")  # type: ignore[no-any-return]
    return Workspace.create(f"ws-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def serve_workspace(home: Path, auth: str = "none") -> Iterator[tuple[Workspace, Services]]:
    """A workspace of a server in this process (uvicorn on a free port, its scheduler here).

    With ``auth="token"`` the server checks tokens, each job gets its own, and the
    workspace is reached with an owner's token.
    """
    import uvicorn

    from cumulo.core.settings import Settings
    from cumulo.sdk.http import HttpTransport
    from cumulo.server.app import create_app
    from cumulo.services.context import open_services

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings.load(home=home, public_url=url, auth=auth)
    services = open_services(settings)
    config = uvicorn.Config(
        create_app(settings, services), host="127.0.0.1", port=port, log_level="warning"
    )
    http = uvicorn.Server(config)
    thread = threading.Thread(target=http.run, daemon=True)
    thread.start()
    wait_until(lambda: http.started, 30, "the server to start")
    services.scheduler.start(url=url, issue_tokens=auth == "token")  # the one its lifespan started
    token = services.auth.create_token("*", "owner")[1] if auth == "token" else None
    name = f"ws-{uuid.uuid4().hex[:8]}"
    HttpTransport(url, token=token).tracking.create_workspace(name)
    try:
        yield Workspace.connect(url, name, token=token), services
    finally:
        services.scheduler.stop(stop_nodes=True)
        http.should_exit = True
        thread.join(10)


@pytest.fixture
def served_ws(tmp_path: Path) -> Iterator[Workspace]:
    with serve_workspace(tmp_path / "server-home") as (workspace, _services):
        yield workspace


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real OpenSSH server on loopback, with a user of its own that jobs run as."""
    why = unavailable()
    if why:
        pytest.skip(why)
    with local_sshd(free_port(), tmp_path_factory.mktemp("sshd")) as server:
        yield server


def ssh_machine(server: Sshd, **settings: Any) -> SshMachine:
    return SshMachine(
        server.host, server.user, key_file=server.key_file, port=server.port, **settings
    )


@contextlib.contextmanager
def shared_folder() -> Iterator[Path]:
    """A folder the SSH machine's user (another account here) reads and writes.

    pytest keeps its folders to this account alone; jobs on the machine answer
    the tests through files here, as they would through a shared folder.
    """
    folder = Path(tempfile.mkdtemp(prefix="cumulo-ssh-", dir="/tmp"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _target_of(request: pytest.FixtureRequest) -> str | None:
    callspec = getattr(request.node, "callspec", None)
    return None if callspec is None else callspec.params.get("target")


@pytest.fixture
def tmp_path(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """pytest's ``tmp_path``, or for the SSH target a ``shared_folder``."""
    if _target_of(request) != "ssh":
        yield tmp_path
        return
    with shared_folder() as folder:
        yield folder


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
    if request.param == "ssh":
        server = request.getfixturevalue("sshd")
        # Each test meets a machine without job environments (the runtime is kept).
        for folder in ("envs", "jobs"):
            shutil.rmtree(server.home / ".cumulo-jobs" / folder, ignore_errors=True)
        ComputeTarget.attach(ws, "ssh", ssh_machine(server))
        return "ssh"
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
