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
from cumulo.compute.base import AGENT_MODULE, HeadRegistry, Launch, TargetState, TargetType
from cumulo.core.errors import InvalidInput


class PoolBackend:
    kind = "pool"

    def __init__(
        self, config: dict[str, Any], home: Path, heads: HeadRegistry | None = None
    ) -> None:
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


def parse_config(config: dict[str, Any]) -> dict[str, Any]:
    nodes = config.get("max_nodes", 2)
    idle = config.get("idle_seconds_before_scaledown", 120)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= 256:
        raise InvalidInput(f"max_nodes must be an integer from 1 to 256, got {nodes!r}.")
    if isinstance(idle, bool) or not isinstance(idle, int | float) or idle < 0:
        raise InvalidInput(f"idle_seconds_before_scaledown must be a number >= 0, got {idle!r}.")
    return {"max_nodes": nodes, "idle_seconds_before_scaledown": float(idle)}


TARGET = TargetType(
    kind="pool", backend=PoolBackend, parse_config=parse_config, pulls_from_queue=True
)
