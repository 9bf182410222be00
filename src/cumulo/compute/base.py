"""The interface every compute backend implements, and the plugin registry."""

from __future__ import annotations

import functools
import importlib
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cumulo.core.errors import ConfigError, InvalidInput
from cumulo.core.jobs import Resources

# kind -> "module:Class", imported on first use.
REGISTRY: dict[str, str] = {
    "local": "cumulo.compute.local:LocalBackend",
    "pool": "cumulo.compute.pool:PoolBackend",
    "ray": "cumulo.compute.ray:RayBackend",
}

AGENT_MODULE = "cumulo.sdk.agent"  # the process that runs a job and reports on it
JOB_FOLDER = ".cumulo_job"  # inside the job's working folder: spec, result, agent log
LOOPBACK = "127.0.0.1"


def host_id(advertise_host: str | None) -> str:
    """This machine in this boot, as handles record it: a process id means something only here.

    The boot id changes when the machine restarts (its old process ids name other
    processes then); the hostname tells apart containers that share one kernel.
    """
    return f"{advertise_host or LOOPBACK}/{socket.gethostname()}/{_boot_id()}"


@functools.cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:36]
    except OSError:
        return "-"


def on_host(handle: dict[str, Any], host: str) -> bool:
    """Whether ``handle``'s process runs on ``host`` (a handle without a host predates them)."""
    recorded = handle.get("host")
    return recorded is None or recorded == host


@dataclass
class Launch:
    """Everything a backend needs to start one attempt of a job."""

    run_id: str
    workspace: str
    attempt: int
    workdir: Path  # the extracted snapshot plus JOB_FOLDER/spec.json
    env: dict[str, str]  # added to the agent's environment
    resources: Resources = field(default_factory=Resources)

    @property
    def submission_id(self) -> str:
        return f"cumulo-{self.run_id}-{self.attempt}"


@dataclass(frozen=True)
class TargetState:
    """What the target says about a job: ``running``, ``ended`` or ``unknown`` (lost)."""

    state: str
    exit_code: int | None = None  # negative: killed by that signal
    message: str = ""


@dataclass(frozen=True)
class HeadRecord:
    """A managed head as the shared store records it: one per cluster (workspace + target).

    ``owner`` started (or took over) the head and renews ``lease_expires_at``
    (ms) while it looks after it; ``address`` is empty while the head starts.
    ``host`` (``host_id``) says where ``pid`` means something.
    """

    owner: str
    lease_expires_at: int
    address: str = ""
    host: str = ""
    pid: int = 0
    start: int | None = None  # the process's start time (processes.start_time)


class HeadRegistry(Protocol):
    """Where one cluster's managed head is recorded, shared by every process over a store.

    The owner is this process's scheduler (``owner``); ``claim`` succeeds only
    while no live record exists (none, or its lease expired), so one process at a
    time starts or takes over the head; the others ``read`` it to use its address.
    """

    owner: str
    advertise_host: str | None  # the address other machines reach this one at
    lease_ms: int

    def read(self) -> HeadRecord | None: ...
    def claim(self) -> bool: ...
    def publish(self, address: str, host: str, pid: int, start: int | None) -> bool: ...
    def renew(self) -> bool: ...
    def release(self, any_owner: bool = False) -> bool: ...


class Backend(Protocol):
    kind: str

    def submit(self, launch: Launch) -> dict[str, Any]: ...
    def status(self, handle: dict[str, Any]) -> TargetState: ...
    def logs(self, handle: dict[str, Any]) -> str: ...
    def cancel(self, handle: dict[str, Any], force: bool = False) -> None: ...
    def close(self) -> None: ...


def load_backend(
    kind: str, config: dict[str, Any], home: Path, heads: HeadRegistry | None = None
) -> Backend:
    """Instantiate the backend for a target of ``kind`` (importing its module now).

    ``heads`` records a Ray target's managed head in the shared store (without it,
    in this home only).
    """
    path = REGISTRY.get(kind)
    if path is None:
        raise InvalidInput(f"No compute backend for kind {kind!r}; known: {sorted(REGISTRY)}.")
    module_name, cls_name = path.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"The {kind!r} compute backend could not be loaded ({exc}); "
            f"install it with: pip install 'cumulo[{kind}]'"
        ) from exc
    cls = getattr(module, cls_name)
    backend: Backend = cls(config, home, heads) if kind == "ray" else cls(config, home)
    return backend
