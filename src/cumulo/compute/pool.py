"""``LocalPool``: a managed pool of worker processes ("nodes") on this machine.

At most ``max_nodes`` nodes run at once; each runs one job at a time, taking
the next queued job of its pool (highest priority first, then first
submitted). The scheduler starts a node when jobs wait and fewer than
``max_nodes`` run; a node stops itself after ``idle_seconds_before_scaledown``
without work. Nodes and the queue are rows in the metadata store, so several
server processes share one pool safely.

A node is ``cumulo.compute.agent node ...`` running ``PoolNode``: it asks its
``NodeQueue`` (the workspace's side, which the services implement) for the
next job, prepares it there, and runs the script here with the runner.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from cumulo.compute import processes
from cumulo.compute.base import AGENT_MODULE, HeadRegistry, Launch, TargetState, TargetType
from cumulo.compute.gpus import machine_capacity
from cumulo.compute.runner import JobChannel, run_job
from cumulo.core.errors import CumuloError, InvalidInput
from cumulo.core.jobs import JobInfo

log = logging.getLogger("cumulo.pool")

POLL_SECONDS = 0.1
HEARTBEAT_SECONDS = 1.0


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
    kind="pool",
    backend=PoolBackend,
    parse_config=parse_config,
    pulls_from_queue=True,
    capacity=machine_capacity,  # its nodes are processes of this machine,
)


# ------------------------------------------------------------------- nodes
class NodeQueue(Protocol):
    """What a pool node asks of its workspace; the services implement it over the store.

    ``take`` leases the pool's next queued job to this node; ``prepare`` unpacks
    it and builds its environment (None: it could not start, and was ended with
    the reason). ``record_handle`` and ``release`` follow the job through its
    lease; ``beat`` says the node lives and renews its job's lease.
    """

    host: str  # this machine, as job handles name it

    def set_state(self, state: str, run_id: str | None = None) -> None: ...
    def beat(self, busy: str | None) -> None: ...
    def idle_seconds(self) -> float | None: ...  # None: the target was deleted
    def server_gone(self) -> bool: ...
    def take(self) -> JobInfo | None: ...
    def prepare(self, job: JobInfo) -> tuple[Path, dict[str, Any]] | None: ...
    def channel(self, job: JobInfo) -> JobChannel: ...
    def record_handle(self, job: JobInfo, handle: dict[str, Any]) -> bool: ...
    def release(self, job: JobInfo) -> None: ...


class PoolNode:
    """One node of a managed pool: takes queued jobs of its pool one at a time."""

    def __init__(self, queue: NodeQueue) -> None:
        self.queue = queue
        self.stop = threading.Event()
        self._busy: str | None = None

    def _heartbeat(self) -> None:
        while not self.stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(CumuloError):
                self.queue.beat(self._busy)

    def run(self) -> None:
        """Take and run jobs until stopped, idle too long, or no server of the service answers."""
        self.queue.set_state("idle")
        beat = threading.Thread(target=self._heartbeat, daemon=True)
        beat.start()
        idle_since = time.monotonic()
        try:
            while not self.stop.is_set():
                idle = self.queue.idle_seconds()
                if idle is None or self.queue.server_gone():
                    return
                job = self.queue.take()
                if job is None:
                    if time.monotonic() - idle_since > idle:
                        return
                    time.sleep(POLL_SECONDS)
                    continue
                self._busy = job.run_id
                self.queue.set_state("busy", run_id=job.run_id)
                try:
                    self._run(job)
                finally:
                    self._busy = None
                    self.queue.set_state("idle")
                    idle_since = time.monotonic()
        finally:
            self.stop.set()
            with contextlib.suppress(CumuloError):
                self.queue.set_state("stopped")

    def _run(self, job: JobInfo) -> None:
        prepared = self.queue.prepare(job)
        if prepared is None:
            return
        workdir, spec = prepared

        def _started(pid: int) -> None:
            handle = {
                "pid": pid,
                "pgid": pid,
                "start": processes.start_time(pid),
                "host": self.queue.host,
            }
            # A scheduler that took the job over (this node looked dead) watches it by this.
            if not self.queue.record_handle(job, handle):
                log.warning("job %s was given up on while this node started it", job.run_id)

        run_job(spec, self.queue.channel(job), workdir, on_child=_started)
        # Its final report normally did this; while the node holds the lease it still may.
        self.queue.release(job)
