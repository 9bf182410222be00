"""What a compute target is (``TargetType``), the interface its backend implements,
and the registry of target kinds.

A target kind is one module of this package that defines ``TARGET``, a
``TargetType``, and is named in ``REGISTRY`` under its kind. The module is
imported the first time a target of that kind is created or used; its optional
libraries (Ray, an SSH client) are imported only by its backend, when it runs.
"""

from __future__ import annotations

import functools
import importlib
import logging
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cumulo.core.errors import ConfigError, InvalidInput
from cumulo.core.jobs import Resources
from cumulo.core.settings import Settings

log = logging.getLogger("cumulo.compute")

# kind -> the module that declares it (``TARGET``), replaced by that declaration
# once the module is imported.
REGISTRY: dict[str, str | TargetType] = {
    "local": "cumulo.compute.local",
    "pool": "cumulo.compute.pool",
    "ray": "cumulo.compute.ray",
    "ssh": "cumulo.compute.ssh",
}

AGENT_MODULE = "cumulo.compute.agent"  # the program that runs a job and reports on it
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


@runtime_checkable
class NodeBackend(Backend, Protocol):
    """The backend of a target whose nodes take queued jobs themselves (``pulls_from_queue``)."""

    def start_node(
        self, workspace: str, target: str, node_id: str, env: dict[str, str]
    ) -> subprocess.Popen[bytes]: ...


@dataclass(frozen=True)
class Capacity:
    """What one job can get of a target at most; None where the target does not say.

    ``gpu_ids`` are the GPUs of this machine the scheduler hands out itself, by
    index (``CUDA_VISIBLE_DEVICES``), one job at a time each: targets whose jobs
    run on this machine. A target that places GPUs itself (Ray) declares only
    ``gpus``.
    """

    gpus: int | None = None
    cpus: float | None = None
    memory_mb: int | None = None
    gpu_ids: tuple[int, ...] | None = None

    def refusal(self, wanted: Resources) -> str | None:
        """Why a job asking ``wanted`` can never run here, or None."""
        if self.gpus is not None and wanted.gpus > self.gpus:
            return f"{_count(wanted.gpus, 'GPU')}, and it has {self.gpus}"
        if self.cpus is not None and wanted.cpus is not None and wanted.cpus > self.cpus:
            return f"{wanted.cpus:g} CPUs, and it has {self.cpus:g}"
        if (
            self.memory_mb is not None
            and wanted.memory_mb is not None
            and wanted.memory_mb > self.memory_mb
        ):
            return f"{wanted.memory_mb} MiB of memory, and it has {self.memory_mb} MiB"
        return None


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class TargetType:
    """What a kind of compute target is, and all the scheduler asks of it.

    ``parse_config`` checks a target's settings and fills in their defaults
    (raising ``InvalidInput``); what it returns is stored with the target and
    given to ``backend(config, home, heads)``, the class that runs its jobs.

    The capabilities (all off by default, as for ``local``):

    - ``remote_agent``: the job's agent runs on another machine. The job's
      environment is built there, the agent reaches the workspace through a
      server's URL (not the store) when one is set, and any server finds the job
      through the target (its handle names no host of this service).
    - ``pulls_from_queue``: the target's nodes take its queued jobs themselves:
      the scheduler hands out none, it starts nodes (``NodeBackend.start_node``)
      while jobs wait, up to ``config["max_nodes"]``; a node stops after
      ``config["idle_seconds_before_scaledown"]`` without work.
    - ``keeps_head``: the backend gets a ``HeadRegistry``, the store's record of
      the target's head (shared by every server); it goes with the target.
    - ``serves_deployments``: model deployments may run on the target.

    ``capacity(config, settings)``, when set, says what one job can get at most
    (``Capacity``): a request beyond it is refused at submit, and the GPUs of a
    target that lists ``gpu_ids`` are handed out by the scheduler.
    ``on_attach(config, home)``, when set, is called with the checked (and
    sealed) config when the target is created, and returns it with what was
    found on the machine (an SSH machine's GPU count).
    ``on_delete(config, home, key)``, when set, is called after such a target
    was deleted (``key`` is ``WORKSPACE-TARGET``), e.g. to stop what it started.
    ``seal(config, home)``, when set, encrypts the secrets among the checked
    settings (values starting with ``core.jobs.SEALED``) before they are stored.
    """

    kind: str
    backend: Callable[[dict[str, Any], Path, HeadRegistry | None], Backend]
    parse_config: Callable[[dict[str, Any]], dict[str, Any]]
    remote_agent: bool = False
    pulls_from_queue: bool = False
    keeps_head: bool = False
    serves_deployments: bool = False
    on_delete: Callable[[dict[str, Any], Path, str], None] | None = None
    capacity: Callable[[dict[str, Any], Settings], Capacity] | None = None
    on_attach: Callable[[dict[str, Any], Path], dict[str, Any]] | None = None
    seal: Callable[[dict[str, Any], Path], dict[str, Any]] | None = None


_unloadable: set[str] = set()


def register(target: TargetType | str, kind: str | None = None) -> None:
    """Add a kind: a ``TargetType``, or the name of the module that declares it as ``TARGET``."""
    if isinstance(target, TargetType):
        REGISTRY[target.kind] = target
    elif kind:
        REGISTRY[kind] = target
    else:
        raise ValueError("register a module by name with the kind it declares")


def target_type(kind: Any) -> TargetType:
    """The declaration of ``kind`` (importing its module now); InvalidInput for an unknown kind."""
    entry = REGISTRY.get(kind) if isinstance(kind, str) else None
    if entry is None:
        raise InvalidInput(
            f"Unknown compute target kind {kind!r}; use one of: {', '.join(REGISTRY)}"
        )
    if isinstance(entry, TargetType):
        return entry
    try:
        module = importlib.import_module(entry)
    except ImportError as exc:
        raise ConfigError(
            f"The {kind!r} compute target could not be loaded ({exc}); "
            f"install it with: pip install 'cumulo[{kind}]'"
        ) from exc
    declared = getattr(module, "TARGET", None)
    if not isinstance(declared, TargetType) or declared.kind != kind:
        raise ConfigError(f"Module {entry} declares no TARGET of kind {kind!r}.")
    REGISTRY[kind] = declared
    return declared


def kinds(**capabilities: bool) -> list[str]:
    """The registered kinds whose capabilities are as given, e.g. ``kinds(pulls_from_queue=True)``.

    A kind whose module cannot be imported here is left out (and said in the log, once).
    """
    found = []
    for kind in list(REGISTRY):
        try:
            declared = target_type(kind)
        except ConfigError as exc:
            if kind not in _unloadable:
                _unloadable.add(kind)
                log.warning("%s", exc.message)
            continue
        if all(getattr(declared, name) == value for name, value in capabilities.items()):
            found.append(kind)
    return found


def load_backend(
    kind: str, config: dict[str, Any], home: Path, heads: HeadRegistry | None = None
) -> Backend:
    """Instantiate the backend for a target of ``kind`` (importing its module now).

    ``heads`` records the target's head in the shared store (``keeps_head``;
    without it, in this home only).
    """
    return target_type(kind).backend(config, home, heads)
