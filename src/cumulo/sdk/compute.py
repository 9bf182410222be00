"""Where jobs run: ``ComputeTarget`` and the configs of its kinds (``LocalPool``, ``RayCluster``).

Example::

    from cumulo import ComputeTarget, LocalPool

    pool = ComputeTarget.create(ws, "cpu-pool", LocalPool(max_nodes=2))
    pool.get_status()["node_state_counts"]
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cumulo.core.jobs import ComputeTargetInfo

if TYPE_CHECKING:
    from cumulo.sdk.workspace import Workspace


@dataclass(frozen=True)
class LocalPool:
    """A managed pool on this machine: at most ``max_nodes`` jobs at once, FIFO with priorities.

    Worker nodes start when jobs wait and stop after ``idle_seconds_before_scaledown``.
    """

    max_nodes: int = 2
    idle_seconds_before_scaledown: float = 120.0
    kind = "pool"

    def to_config(self) -> dict[str, Any]:
        return {
            "max_nodes": self.max_nodes,
            "idle_seconds_before_scaledown": self.idle_seconds_before_scaledown,
        }


@dataclass(frozen=True)
class RayCluster:
    """A Ray cluster reached through its Jobs API (``address`` = the dashboard URL).

    ``RayCluster.managed(num_cpus=2)`` starts a local head for the workspace on first use.
    """

    address: str | None = None
    token: str | None = None
    managed_head: bool = False
    num_cpus: int | None = None
    num_gpus: int | None = None
    kind = "ray"

    @classmethod
    def managed(cls, num_cpus: int | None = None, num_gpus: int | None = None) -> RayCluster:
        return cls(managed_head=True, num_cpus=num_cpus, num_gpus=num_gpus)

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "address": self.address,
            "managed": self.managed_head,
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
        }
        if self.token:
            config["token"] = self.token
        return config


class ComputeTarget:
    """A place to run jobs: ``"local"`` (built in), a ``LocalPool`` or a ``RayCluster``.

    Example::

        pool = ComputeTarget.create(ws, "cpu-pool", LocalPool(max_nodes=2))
        pool.get_status()["node_state_counts"]
    """

    def __init__(self, workspace: Workspace, info: ComputeTargetInfo) -> None:
        self.workspace = workspace
        self._info = info

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def kind(self) -> str:
        return self._info.kind

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._info.config)

    @staticmethod
    def create(
        workspace: Workspace, name: str, config: LocalPool | RayCluster | dict[str, Any]
    ) -> ComputeTarget:
        if isinstance(config, dict):
            kind, cfg = config.get("kind"), {k: v for k, v in config.items() if k != "kind"}
        else:
            kind, cfg = config.kind, config.to_config()
        info = workspace.transport.jobs.create_compute_target(workspace.name, name, str(kind), cfg)
        return ComputeTarget(workspace, info)

    @staticmethod
    def get(workspace: Workspace, name: str) -> ComputeTarget:
        jobs = workspace.transport.jobs
        return ComputeTarget(workspace, jobs.get_compute_target(workspace.name, name))

    @staticmethod
    def list(workspace: Workspace) -> builtins.list[ComputeTarget]:
        jobs = workspace.transport.jobs
        return [ComputeTarget(workspace, i) for i in jobs.list_compute_targets(workspace.name)]

    def get_status(self) -> dict[str, Any]:
        """Nodes and their states, and the queue (run ids in the order they will start)."""
        return self.workspace.transport.jobs.compute_status(self.workspace.name, self.name)

    def delete(self) -> None:
        self.workspace.transport.jobs.delete_compute_target(self.workspace.name, self.name)

    def __repr__(self) -> str:
        return f"ComputeTarget(name={self.name!r}, kind={self.kind!r}, config={self.config})"
