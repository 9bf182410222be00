"""The reserved ``system/`` metric names: what the machine did while a run ran.

A job's runner (and an interactive run started with ``system_metrics=True``)
samples the machine and the run's own processes every few seconds and logs
the samples under ``system/``. The names follow MLflow's system metrics, so a
run logged by an MLflow client with ``log_system_metrics=True`` is shown the
same way; the few that MLflow has no name for (the run's process tree, disk
reads and writes, GPU temperature and total memory) are named in its style.

Only these names may be logged under ``system/``: a user's own metric never
lands among them. Sizes are in megabytes of 10^6 bytes, as in MLflow.
"""

from __future__ import annotations

import re
from typing import Any

from cumulo.core.errors import InvalidInput

PREFIX = "system/"

# The machine.
CPU = "system/cpu_utilization_percentage"  # all CPUs together, 0-100
MEMORY_USED = "system/system_memory_usage_megabytes"
MEMORY_PERCENT = "system/system_memory_usage_percentage"
MEMORY_AVAILABLE = "system/system_memory_available_megabytes"
# The run's processes: the script and every process it started (100 = one busy core).
PROCESS_CPU = "system/process_cpu_percentage"
PROCESS_RSS = "system/process_rss_megabytes"
# The disk of the run's working folder, and the machine's disk and network traffic
# since sampling started.
DISK_PERCENT = "system/disk_usage_percentage"
DISK_USED = "system/disk_usage_megabytes"
DISK_AVAILABLE = "system/disk_available_megabytes"
DISK_READ = "system/disk_read_megabytes"
DISK_WRITE = "system/disk_write_megabytes"
NETWORK_RECEIVE = "system/network_receive_megabytes"
NETWORK_TRANSMIT = "system/network_transmit_megabytes"

# Per GPU, ``system/gpu_<index>_<what>``.
GPU_FIELDS = (
    "utilization_percentage",
    "memory_usage_percentage",
    "memory_usage_megabytes",
    "memory_usage_gigabytes",  # MLflow's name on some devices
    "memory_total_megabytes",
    "power_usage_watts",
    "power_usage_percentage",
    "temperature_celsius",
)

MACHINE = (
    CPU,
    MEMORY_USED,
    MEMORY_PERCENT,
    MEMORY_AVAILABLE,
    PROCESS_CPU,
    PROCESS_RSS,
    DISK_PERCENT,
    DISK_USED,
    DISK_AVAILABLE,
    DISK_READ,
    DISK_WRITE,
    NETWORK_RECEIVE,
    NETWORK_TRANSMIT,
)

_NAME_RE = re.compile(
    "^system/(?:"
    + "|".join(re.escape(name.removeprefix(PREFIX)) for name in MACHINE)
    + r"|gpu_\d{1,3}_(?:"
    + "|".join(GPU_FIELDS)
    + "))$"
)

# Default seconds between two samples (``Settings.system_metrics_interval``).
DEFAULT_INTERVAL = 10.0
MIN_INTERVAL = 0.1


def gpu(index: int, field: str) -> str:
    return f"system/gpu_{index}_{field}"


def is_system(name: str) -> bool:
    return name.startswith(PREFIX)


def known(name: str) -> bool:
    """Whether ``name`` is one of the system metric names."""
    return _NAME_RE.match(name) is not None


def check_name(name: str) -> str:
    """A metric name a store may take: under ``system/`` only the system metric names."""
    if name.startswith(PREFIX) and not known(name):
        raise InvalidInput(
            f"Metric {name!r}: names under {PREFIX!r} are reserved for system metrics "
            "(CPU, memory, disk, network, GPUs); log your own metric under another name."
        )
    return name


def interval(value: Any, what: str = "system_metrics_interval") -> float:
    """Seconds between two samples; 0 turns sampling off."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what} must be a number of seconds (0 turns it off), got {value!r}.")
    if value == 0:
        return 0.0
    if not MIN_INTERVAL <= value <= 86_400:
        raise InvalidInput(
            f"{what} must be 0 (off) or from {MIN_INTERVAL} to 86400 seconds, got {value!r}."
        )
    return float(value)
