"""``LocalPool``: a managed pool of worker processes ("nodes") on this machine.

At most ``max_nodes`` nodes run at once; each runs one job at a time, taking
the next queued job of its pool (highest priority first, then first
submitted). The scheduler starts a node when jobs wait and fewer than
``max_nodes`` run; a node stops itself after ``idle_seconds_before_scaledown``
without work. Nodes and the queue are rows in the metadata store, so several
server processes share one pool safely.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from cumulo.compute import processes
from cumulo.compute.base import AGENT_MODULE, Launch, TargetState


class PoolBackend:
    kind = "pool"

    def __init__(self, config: dict[str, Any], home: Path) -> None:
        self.config = config
        self.home = home

    def start_node(
        self, workspace: str, target: str, node_id: str, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        folder = self.home / "pools" / workspace / target
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{node_id}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", AGENT_MODULE, "node", workspace, target, node_id],
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        processes.remember(proc)
        return proc

    def submit(self, launch: Launch) -> dict[str, Any]:
        raise NotImplementedError("pool nodes take their jobs from the queue themselves")

    def status(self, handle: dict[str, Any]) -> TargetState:
        """A pool job's state from its script process (the node may be gone)."""
        pid = handle.get("pid")
        if pid is None:
            return TargetState("unknown", None, "the job never started on a node")
        if processes.alive(int(pid), handle.get("start")):
            return TargetState("running")
        return TargetState("ended", None, "the job's script process is gone")

    def logs(self, handle: dict[str, Any]) -> str:
        return ""

    def cancel(self, handle: dict[str, Any], force: bool = False) -> None:
        pgid = handle.get("pgid")
        if pgid and processes.alive(int(handle["pid"]), handle.get("start")):
            if force:
                processes.end_groups([int(pgid)], grace=0.0)
            else:
                processes.kill_group(int(pgid), signal.SIGTERM)

    def close(self) -> None:
        return None
