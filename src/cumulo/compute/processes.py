"""Local processes: start detached, check liveness (robust to pid reuse), kill trees."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from cumulo.compute.base import JOB_FOLDER, TargetState

# Children started by this process: their exit codes (and signals) are only
# known here, and polling them also reaps them.
_children: dict[int, subprocess.Popen[bytes]] = {}
_lock = threading.Lock()


def remember(proc: subprocess.Popen[bytes]) -> None:
    with _lock:
        _children[proc.pid] = proc


def child(pid: int) -> subprocess.Popen[bytes] | None:
    with _lock:
        return _children.get(pid)


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has ended
        return None
    return int(fields[19])


def alive(pid: int, started: int | None) -> bool:
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def kill_group(pgid: int | None, sig: int) -> bool:
    if not pgid or pgid <= 1 or pgid == os.getpgid(0):
        return False
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def end_groups(pgids: list[int], grace: float) -> None:
    """SIGTERM each group, then SIGKILL what is left after ``grace`` seconds."""
    pgids = [p for p in pgids if p and p > 1]
    for pgid in pgids:
        kill_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(group_alive(p) for p in pgids):
        time.sleep(0.05)
    for pgid in pgids:
        kill_group(pgid, signal.SIGKILL)


def die_with_parent() -> None:
    """In a child before exec: get SIGKILL when the process that started it dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def process_state(handle: dict[str, Any]) -> TargetState:
    """The state of an agent process started on this machine (see ``LocalBackend``)."""
    pid = int(handle["pid"])
    proc = child(pid)
    if proc is not None:
        code = proc.poll()
        if code is None:
            return TargetState("running")
        return TargetState("ended", code, _ended_message(code))
    if alive(pid, handle.get("start")):
        return TargetState("running")
    workdir = handle.get("workdir")
    result = read_json(Path(workdir) / JOB_FOLDER / "result.json") if workdir else None
    if result is not None:
        return TargetState("ended", int(result.get("agent_exit", 0)), "the job's agent finished")
    return TargetState("unknown", None, "the job's process is gone and left no result")


def _ended_message(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the job's agent process was killed by {name}"
    return f"the job's agent process exited with code {code}"
