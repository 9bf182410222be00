"""``local``: one detached agent process per job on this machine.

The agent runs in its own session (process group) and starts the script in
another; cancelling sends SIGTERM to the agent, which ends the script's whole
group, uploads what it has and records ``Canceled``; a forced cancel kills
both groups.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from cumulo.compute import processes
from cumulo.compute.base import (
    AGENT_MODULE,
    JOB_FOLDER,
    HeadRegistry,
    Launch,
    TargetState,
    TargetType,
)
from cumulo.compute.gpus import machine_capacity
from cumulo.core.errors import InvalidInput

# Spare agents kept warm. One is not enough: a spare started after a job took the
# last one needs about a second to import, and a job submitted right behind
# would wait for it; with two, back-to-back jobs find one ready.
SPARES = 2


class LocalBackend:
    """Keeps spare agents warm (imports done, store open), so a job starts at once."""

    kind = "local"

    def __init__(
        self, config: dict[str, Any], home: Path, heads: HeadRegistry | None = None
    ) -> None:
        self.config = config
        self.home = home
        self._spares: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()

    def submit(self, launch: Launch) -> dict[str, Any]:
        handle = None
        while handle is None:
            with self._lock:
                spare = self._spares.pop(0) if self._spares else None
            if spare is None:
                break
            if spare.poll() is None and spare.stdin is not None:
                message = {"workdir": str(launch.workdir), "env": launch.env}
                try:
                    spare.stdin.write(json.dumps(message).encode() + b"\n")
                    spare.stdin.close()
                    handle = _handle(spare, launch.workdir)
                except OSError:
                    handle = None
        if handle is None:
            handle = start_agent(launch)
        with self._lock:
            self._spares = [p for p in self._spares if p.poll() is None]
            while len(self._spares) < SPARES:
                self._spares.append(_start_spare(self.home, launch.env))
        return handle

    def status(self, handle: dict[str, Any]) -> TargetState:
        return processes.process_state(handle)

    def logs(self, handle: dict[str, Any]) -> str:
        return agent_log(handle)

    def cancel(self, handle: dict[str, Any], force: bool = False) -> None:
        cancel_agent(handle, force)

    def close(self) -> None:
        with self._lock:
            spares, self._spares = self._spares, []
        for spare in spares:
            if spare.stdin is not None:
                spare.stdin.close()  # a spare exits when its stdin closes without a job
        for spare in spares:
            try:
                spare.wait(10)
            except subprocess.TimeoutExpired:
                spare.kill()
                spare.wait()


def _start_spare(home: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    folder = home / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "agents.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", AGENT_MODULE, "standby"],
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    processes.remember(proc)
    return proc


def _handle(proc: subprocess.Popen[bytes], workdir: Path) -> dict[str, Any]:
    return {
        "pid": proc.pid,
        "pgid": proc.pid,
        "start": processes.start_time(proc.pid),
        "workdir": str(workdir),
    }


def start_agent(launch: Launch) -> dict[str, Any]:
    folder = launch.workdir / JOB_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "agent.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", AGENT_MODULE, "run", str(launch.workdir)],
            cwd=launch.workdir,
            env={**os.environ, **launch.env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    processes.remember(proc)
    return _handle(proc, launch.workdir)


def agent_log(handle: dict[str, Any]) -> str:
    try:
        return (Path(handle["workdir"]) / JOB_FOLDER / "agent.log").read_text(errors="replace")
    except (OSError, KeyError):
        return ""


def cancel_agent(handle: dict[str, Any], force: bool) -> None:
    pid = int(handle["pid"])
    if not processes.alive(pid, handle.get("start")):
        return
    if not force:
        processes.kill_group(int(handle.get("pgid") or pid), signal.SIGTERM)
        return
    groups = [int(handle.get("pgid") or pid)]
    child = processes.read_json(Path(handle["workdir"]) / JOB_FOLDER / "child.json")
    if child and child.get("pgid"):
        groups.append(int(child["pgid"]))
    processes.end_groups(groups, grace=0.0)


def parse_config(config: dict[str, Any]) -> dict[str, Any]:
    if config:
        raise InvalidInput(
            "A local target takes no settings (it starts every job at once); use "
            "LocalPool(max_nodes=N) to run at most N jobs at a time."
        )
    return {}


TARGET = TargetType(
    kind="local",
    backend=LocalBackend,
    parse_config=parse_config,
    capacity=machine_capacity,  # its jobs run on this machine
)
