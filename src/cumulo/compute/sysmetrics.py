"""Samples the machine and a run's processes: the run's ``system/`` metrics.

``Sampler.sample()`` reads, through psutil, the machine's CPU and memory, the
CPU time and resident memory of one process tree (the job's script and every
process it started), the disk of the run's working folder, and the machine's
disk and network traffic since the first sample; through NVML
(``nvidia-ml-py``), where a driver answers, each GPU's utilisation, memory,
temperature and power. ``Sampling`` calls it every ``interval`` seconds in a
daemon thread and hands each sample, as metric points, to a callback.

The names are ``core.system_metrics``'s. A job's runner starts one for the
script's process; an interactive run started with ``system_metrics=True``
starts one for its own process.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from cumulo.core import system_metrics as names

log = logging.getLogger("cumulo.sysmetrics")

MB = 1e6  # MLflow's megabytes
# (name, value, step, timestamp ms)
Point = tuple[str, float, int, int]


def load_nvml() -> Any | None:
    """The NVML bindings, initialised, or None where no NVIDIA driver answers."""
    try:
        nvml = importlib.import_module("pynvml")
        nvml.nvmlInit()
    except Exception as exc:  # no package, no driver, no device: no GPU metrics
        log.debug("no GPU metrics: %s", exc)
        return None
    return nvml


def gpu_count(nvml: Any | None) -> int:
    """The GPUs NVML sees (0 without NVML)."""
    if nvml is None:
        return 0
    try:
        return int(nvml.nvmlDeviceGetCount())
    except Exception as exc:
        log.warning("NVML could not count the GPUs: %s", exc)
        return 0


def visible_gpus(value: str | None, count: int) -> list[int]:
    """The GPUs ``CUDA_VISIBLE_DEVICES`` names (all ``count`` of them when it is unset)."""
    if value is None:
        return list(range(count))
    found = []
    for part in value.split(","):
        part = part.strip()
        if part.isdigit() and int(part) < count:
            found.append(int(part))
        elif part:  # a UUID or a MIG name: sample every GPU rather than guess
            return list(range(count))
    return found


class Sampler:
    """One reading of everything, as ``{name: value}``; call ``sample()`` at each interval.

    ``pid`` is the root of the process tree measured (None: this process);
    ``folder`` the working folder whose disk is measured; ``visible`` the
    ``CUDA_VISIBLE_DEVICES`` of the process, whose GPUs are read (None: all NVML
    sees); ``nvml`` the NVML bindings, already initialised (None: loaded here
    when a driver answers; ``False``: none).
    """

    def __init__(
        self,
        pid: int | None = None,
        folder: Path | str = ".",
        visible: str | None = None,
        nvml: Any = None,
    ) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.folder = str(folder)
        self.nvml = load_nvml() if nvml is None else (nvml or None)
        self.gpus = visible_gpus(visible, gpu_count(self.nvml))
        self._handles: dict[int, Any] = {}
        self._cpu_seen: dict[tuple[int, float], float] = {}  # (pid, create time) -> CPU s
        self._last_wall = time.monotonic()
        psutil.cpu_percent(interval=None)  # the first call only starts the count
        self._disk0 = _disk_io()
        self._net0 = _net_io()
        self._tree_cpu()  # start counting the tree's CPU time from here

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        out[names.CPU] = psutil.cpu_percent(interval=None)
        memory = psutil.virtual_memory()
        out[names.MEMORY_USED] = (memory.total - memory.available) / MB
        out[names.MEMORY_PERCENT] = memory.percent
        out[names.MEMORY_AVAILABLE] = memory.available / MB
        cpu, rss = self._tree_cpu()
        out[names.PROCESS_CPU] = cpu
        out[names.PROCESS_RSS] = rss / MB
        with contextlib.suppress(OSError):
            disk = psutil.disk_usage(self.folder)
            out[names.DISK_PERCENT] = disk.percent
            out[names.DISK_USED] = disk.used / MB
            out[names.DISK_AVAILABLE] = disk.free / MB
        disk_io = _disk_io()
        if disk_io is not None and self._disk0 is not None:
            out[names.DISK_READ] = max(0, disk_io[0] - self._disk0[0]) / MB
            out[names.DISK_WRITE] = max(0, disk_io[1] - self._disk0[1]) / MB
        net = _net_io()
        if net is not None and self._net0 is not None:
            out[names.NETWORK_RECEIVE] = max(0, net[0] - self._net0[0]) / MB
            out[names.NETWORK_TRANSMIT] = max(0, net[1] - self._net0[1]) / MB
        for index in self.gpus:
            out.update(self._gpu(index))
        return out

    def _tree_cpu(self) -> tuple[float, float]:
        """(CPU % of the tree since the last call, 100 = one core; its resident bytes)."""
        now = time.monotonic()
        wall, self._last_wall = now - self._last_wall, now
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0, 0.0
        seen: dict[tuple[int, float], float] = {}
        used = rss = 0.0
        for proc in tree:
            try:
                with proc.oneshot():
                    key = (proc.pid, proc.create_time())
                    times = proc.cpu_times()
                    rss += proc.memory_info().rss
            except psutil.Error:
                continue  # it ended meanwhile
            total = times.user + times.system
            seen[key] = total
            # A process first seen now started since the last call (or with the tree).
            used += total - self._cpu_seen.get(key, 0.0)
        self._cpu_seen = seen
        return (100.0 * used / wall if wall > 0 else 0.0), rss

    def _gpu(self, index: int) -> dict[str, float]:
        nvml: Any = self.nvml
        out: dict[str, float] = {}
        try:
            handle = self._handles.get(index)
            if handle is None:
                handle = self._handles[index] = nvml.nvmlDeviceGetHandleByIndex(index)
            out[names.gpu(index, "utilization_percentage")] = float(
                nvml.nvmlDeviceGetUtilizationRates(handle).gpu
            )
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            out[names.gpu(index, "memory_usage_megabytes")] = memory.used / MB
            out[names.gpu(index, "memory_total_megabytes")] = memory.total / MB
            if memory.total:
                share = 100.0 * memory.used / memory.total
                out[names.gpu(index, "memory_usage_percentage")] = share
            out[names.gpu(index, "temperature_celsius")] = float(
                nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
            )
            watts = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
            out[names.gpu(index, "power_usage_watts")] = watts
            limit = nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0
            if limit:
                out[names.gpu(index, "power_usage_percentage")] = 100.0 * watts / limit
        except Exception as exc:  # a reading the device does not offer: keep the others
            log.debug("GPU %d: %s", index, exc)
        return out

    def close(self) -> None:
        if self.nvml is not None:
            with contextlib.suppress(Exception):
                self.nvml.nvmlShutdown()
            self.nvml = None


def _disk_io() -> tuple[int, int] | None:
    try:
        counters = psutil.disk_io_counters()
    except (OSError, RuntimeError):
        return None
    return None if counters is None else (counters.read_bytes, counters.write_bytes)


def _net_io() -> tuple[int, int] | None:
    try:
        counters = psutil.net_io_counters()
    except (OSError, RuntimeError):
        return None
    return (counters.bytes_recv, counters.bytes_sent)


class Sampling:
    """Samples every ``interval`` seconds in a daemon thread and hands each sample on.

    The first sample is taken ``interval`` seconds after ``start`` (rates need a
    time span); ``emit`` gets the points of one sample, their step counting up.
    """

    def __init__(
        self, sampler: Sampler, interval: float, emit: Callable[[list[Point]], None]
    ) -> None:
        self.sampler = sampler
        self.interval = interval
        self.emit = emit
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cumulo-sysmetrics", daemon=True)

    def start(self) -> Sampling:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.sampler.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                values = self.sampler.sample()
                at = time.time_ns() // 1_000_000
                points = [(name, float(v), self.samples, at) for name, v in values.items()]
                self.samples += 1
                self.emit(points)
            except Exception:  # sampling never ends the run
                log.exception("system metrics: a sample failed")
