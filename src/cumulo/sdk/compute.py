"""Where jobs run: ``ComputeTarget`` and the configs of its kinds (``LocalPool``,
``RayCluster``, ``SshMachine``).

Example::

    from cumulo import ComputeTarget, LocalPool

    pool = ComputeTarget.create(ws, "cpu-pool", LocalPool(max_nodes=2))
    pool.get_status()["node_state_counts"]
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cumulo.core.errors import InvalidInput, NotFound
from cumulo.core.jobs import ComputeTargetInfo
from cumulo.sdk import v1
from cumulo.sdk.run import WorkspaceRef


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


# The dataclass's own __init__, checked so that provisioning_configuration's
# parameters with no twin say what to use.
LocalPool.__init__ = v1.arguments(  # type: ignore[method-assign]
    "LocalPool",
    {
        "vm_size": "resources= of each job's ScriptRunConfig: a pool node is a process of "
        "this machine",
        "vm_priority": "priority= of each job's ScriptRunConfig",
        "min_nodes": "max_nodes= alone: nodes start as jobs wait and stop when idle",
        "admin_username": "SshMachine(host, username=...) for a remote machine",
        "vnet_name": "SshMachine or RayCluster for machines of a network",
    },
)(LocalPool.__init__)


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


@dataclass(frozen=True)
class SshMachine:
    """A machine of one's own, reached over SSH: jobs run there as ``user``.

    The server copies each job there, installs cumulo once (a virtual environment
    under ``work_dir`` made from the machine's ``python``), builds the job's
    environment there (cached), and runs at most ``max_concurrent_jobs`` jobs at
    once; the machine reports back to the server's address, which it must reach.
    On attach its GPUs are counted there (NVML) and kept with the target: a job
    asking for more is refused at submit.
    The key file is read here and stored encrypted by the server, never shown.
    Example::

        gpu = SshMachine("gpu-box.lan", user="ml", key_file="~/.ssh/id_ed25519")
        ComputeTarget.attach(ws, "gpu-box", gpu)
    """

    host: str
    user: str
    key_file: str | Path | None = None
    port: int = 22
    password: str | None = None  # the key's passphrase, or the account's password
    python: str = "python3"
    work_dir: str = "~/.cumulo-jobs"
    max_concurrent_jobs: int = 1
    lost_after_seconds: float = 60.0  # unreachable this long: its jobs are lost (and stopped)
    host_key: str | None = None  # "ssh-ed25519 AAAA...": pinned; else trusted on first use
    kind = "ssh"

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "python": self.python,
            "work_dir": self.work_dir,
            "max_concurrent_jobs": self.max_concurrent_jobs,
            "lost_after_seconds": self.lost_after_seconds,
        }
        if self.key_file is not None:
            path = Path(self.key_file).expanduser()
            if not path.is_file():
                raise NotFound(f"Key file {str(path)!r} does not exist.")
            config["private_key"] = path.read_text()
        if self.password is not None:
            config["password"] = self.password
        if self.host_key is not None:
            config["host_key"] = self.host_key
        return config

    def __repr__(self) -> str:  # the password stays out of logs and notebooks
        return (
            f"SshMachine(host={self.host!r}, user={self.user!r}, port={self.port}, "
            f"key_file={self.key_file!r}, max_concurrent_jobs={self.max_concurrent_jobs})"
        )


TargetConfig = LocalPool | RayCluster | SshMachine


def _get_target(workspace: WorkspaceRef, name: str) -> ComputeTargetInfo:
    jobs = workspace.transport.jobs
    try:
        return jobs.get_compute_target(workspace.name, name)
    except NotFound:
        names = sorted(t.name for t in jobs.list_compute_targets(workspace.name))
        raise NotFound(
            f"Compute target {name!r} does not exist in workspace {workspace.name!r}; it has "
            f"{', '.join(names)}. Create one with ComputeTarget.create(ws, {name!r}, LocalPool())."
        ) from None


class ComputeTarget:
    """A place to run jobs: ``"local"`` (built in), a ``LocalPool``, a ``RayCluster``
    or an ``SshMachine``.

    Example::

        pool = ComputeTarget.create(ws, "cpu-pool", LocalPool(max_nodes=2))
        pool.get_status()["node_state_counts"]
    """

    def __init__(
        self,
        workspace: WorkspaceRef,
        info: ComputeTargetInfo | str | None = None,
        name: str | None = None,
    ) -> None:
        """``ComputeTarget(ws, name="cpu-pool")`` (or ``ComputeTarget(ws, "cpu-pool")``)
        opens an existing target; raises ``NotFound`` naming the ones there are."""
        self.workspace = workspace
        if isinstance(info, str):
            info, name = None, info
        if info is None:
            if not name:
                raise InvalidInput(
                    "Name the compute target: ComputeTarget(workspace=ws, name=...)."
                )
            info = _get_target(workspace, name)
        self._info = info

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def kind(self) -> str:
        return self._info.kind

    @property
    def config(self) -> dict[str, Any]:
        """Its settings; a secret (an SSH key, a password) shows as ``"***"``."""
        return self._info.public_config

    @staticmethod
    def create(
        workspace: WorkspaceRef, name: str, config: TargetConfig | dict[str, Any]
    ) -> ComputeTarget:
        if isinstance(config, dict):
            kind, cfg = config.get("kind"), {k: v for k, v in config.items() if k != "kind"}
        else:
            kind, cfg = config.kind, config.to_config()
        info = workspace.transport.jobs.create_compute_target(workspace.name, name, str(kind), cfg)
        return ComputeTarget(workspace, info)

    @staticmethod
    def attach(workspace: WorkspaceRef, name: str, machine: SshMachine) -> ComputeTarget:
        """Attach a machine of one's own (``SshMachine``) as a target named ``name``."""
        return ComputeTarget.create(workspace, name, machine)

    @staticmethod
    def get(workspace: WorkspaceRef, name: str) -> ComputeTarget:
        return ComputeTarget(workspace, _get_target(workspace, name))

    @staticmethod
    def list(workspace: WorkspaceRef) -> builtins.list[ComputeTarget]:
        jobs = workspace.transport.jobs
        return [ComputeTarget(workspace, i) for i in jobs.list_compute_targets(workspace.name)]

    def get_status(self) -> dict[str, Any]:
        """Nodes and their states, and the queue (run ids in the order they will start)."""
        return self.workspace.transport.jobs.compute_status(self.workspace.name, self.name)

    def wait_for_completion(
        self,
        show_output: bool = False,
        min_node_count: int | None = None,
        timeout_in_minutes: int = 20,
    ) -> dict[str, Any]:
        """Returns the target's status at once: a target here is ready when created.

        Nodes of a pool start when jobs wait for them and stop when idle, so there
        is no provisioning to wait for (``min_node_count`` and the timeout are
        accepted for scripts written for the cloud service, and change nothing).
        """
        status = self.get_status()
        if show_output:
            print(f"Compute target {self.name} ({self.kind}) is ready; nodes start as jobs wait.")
        return status

    def delete(self) -> None:
        self.workspace.transport.jobs.delete_compute_target(self.workspace.name, self.name)

    def __repr__(self) -> str:
        return f"ComputeTarget(name={self.name!r}, kind={self.kind!r}, config={self.config})"
