"""This machine's GPUs and which job holds each: what the scheduler hands out.

``machine_capacity(settings)`` is what a job on this machine can get: its CPUs
and memory (psutil) and its GPUs, those ``settings.local_gpus`` declares or
else those NVML finds. ``GpuLedger`` records, in a file under the home changed
under a lock, which GPUs each job attempt holds, so the schedulers and pool
nodes of one home never give one GPU to two jobs. An entry is let go when its
job attempt is no longer active (ended, retried, lost): a job whose process
was killed frees its GPUs at the next look. An endpoint's replicas take theirs
in the same file (``take_for_process``), so a job and a replica never share a
GPU; the supervisor lets them go when the replica stops, and they are freed
too once the process that took them is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

from cumulo.compute.base import Capacity
from cumulo.compute.sysmetrics import gpu_count, load_nvml
from cumulo.core.settings import Settings

LEDGER = "gpus.json"


@functools.cache
def _nvml_gpus() -> int:
    nvml = load_nvml()
    count = gpu_count(nvml)
    if nvml is not None:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
    return count


def machine_gpus(settings: Settings) -> tuple[int, ...]:
    """The GPU indices jobs on this machine may be given."""
    if settings.local_gpus is not None:
        return settings.local_gpus
    return tuple(range(_nvml_gpus()))


def gpus_here() -> int:
    """How many GPUs this machine offers (``machine_gpus`` under its own settings): what
    an SSH-attached machine reports on attach."""
    return len(machine_gpus(Settings.load()))


def machine_capacity(config: dict[str, Any], settings: Settings) -> Capacity:
    """What one job on this machine can get: all of it."""
    ids = machine_gpus(settings)
    return Capacity(
        gpus=len(ids),
        cpus=float(psutil.cpu_count() or 1),
        memory_mb=psutil.virtual_memory().total // (1024 * 1024),
        gpu_ids=ids,
    )


# (run id, attempt) -> is that attempt still active?
Alive = Callable[[str, int], bool]


class GpuLedger:
    """Which GPUs each job attempt holds, in ``<home>/gpus.json``."""

    def __init__(self, home: Path) -> None:
        self.path = home / LEDGER
        self.lock = home / (LEDGER + ".lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                held = json.loads(self.path.read_text()) if self.path.exists() else {}
            except ValueError:
                held = {}
            before = dict(held)
            yield held
            if held != before:
                partial = self.path.with_suffix(".part")
                partial.write_text(json.dumps(held))
                os.replace(partial, self.path)

    def take(
        self, run_id: str, attempt: int, count: int, inventory: Sequence[int], alive: Alive
    ) -> tuple[int, ...] | None:
        """``count`` free GPUs of ``inventory`` for this attempt (its own if it holds some),
        or None while fewer are free."""
        return self._grab({"run_id": run_id, "attempt": attempt}, count, inventory, alive)

    def take_for_process(
        self, holder: str, count: int, inventory: Sequence[int], alive: Alive
    ) -> tuple[int, ...] | None:
        """``count`` free GPUs for ``holder`` (a replica) of this process, kept until
        ``release(holder)`` or until this process is gone; None while fewer are free."""
        return self._grab({"holder": holder, "pid": os.getpid()}, count, inventory, alive)

    def release(self, holder: str) -> None:
        """Let go of the GPUs ``holder`` of this process holds."""
        with self._locked() as held:
            for key, entry in list(held.items()):
                if entry == {"holder": holder, "pid": os.getpid()}:
                    del held[key]

    def _grab(
        self, entry: dict[str, Any], count: int, inventory: Sequence[int], alive: Alive
    ) -> tuple[int, ...] | None:
        with self._locked() as held:
            for key, other in list(held.items()):
                if other != entry and not _active(other, alive):
                    del held[key]  # its job ended or was lost or retried, its process is gone
            own = tuple(int(g) for g, e in held.items() if e == entry)
            if len(own) == count:
                return tuple(sorted(own))
            free = [g for g in inventory if str(g) not in held]
            if len(free) < count:
                return None
            for gpu in free[:count]:
                held[str(gpu)] = dict(entry)
            return tuple(free[:count])

    def held_by(self, run_id: str, attempt: int) -> tuple[int, ...]:
        """The GPUs this attempt holds."""
        with self._locked() as held:
            return tuple(
                sorted(
                    int(g)
                    for g, e in held.items()
                    if e.get("run_id") == run_id and e.get("attempt") == attempt
                )
            )

    def in_use(self) -> dict[int, str]:
        """GPU -> the run or replica holding it (stale entries included until the next
        ``take``)."""
        with self._locked() as held:
            return {int(g): e.get("run_id") or e["holder"] for g, e in held.items()}


def _active(entry: dict[str, Any], alive: Alive) -> bool:
    if "pid" in entry:  # a replica's: held while the process that took it runs
        return bool(psutil.pid_exists(int(entry["pid"])))
    return alive(entry["run_id"], int(entry["attempt"]))
