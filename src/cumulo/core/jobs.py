"""Jobs, compute targets, environments and snapshots: types and value rules.

A *job* is a run submitted with a ``ScriptRunConfig``: its code snapshot, its
environment and the compute target it runs on. The run's status is what users
see; the job row carries what the scheduler needs (lease, attempts, handle).

Limits: a snapshot holds at most ``SNAPSHOT_MAX_BYTES`` (300 MiB, raise it with
``CUMULO_SNAPSHOT_MAX_MB``) and ``SNAPSHOT_MAX_FILES`` files; target and
environment names are 1-64 characters of letters, digits, ``_ - .``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import signal
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from cumulo.core.entities import Record
from cumulo.core.errors import InvalidInput

SNAPSHOT_MAX_BYTES = 300 * 1024 * 1024
SNAPSHOT_MAX_FILES = 20_000
MAX_ARGUMENTS = 1000
MAX_PRIORITY = 1000
LOG_TAIL_LINES = 20
# ``runs.kind`` of a submitted job: its runner, not its script, decides how it ends.
JOB_RUN_KIND = "job"
# Marks the error of a job whose script called ``run.fail()``: the job fails when it ends.
SCRIPT_FAILED = "failedByScript"
# The tag that says why a queued job waits (e.g. "waiting for 1 GPU"), while it does.
QUEUE_REASON_TAG = "cumulo.queue_reason"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class JobState(StrEnum):
    """Where the scheduler stands with a job (the run status is what users see)."""

    QUEUED = "queued"  # waiting for a scheduler or a pool node
    ACTIVE = "active"  # leased: being prepared, running or finishing
    DONE = "done"  # the run reached a final status


class BuildStatus(StrEnum):
    NOT_BUILT = "NotBuilt"
    BUILDING = "Building"
    READY = "Ready"
    FAILED = "Failed"


class LogStream(StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"
    SYSTEM = "system"  # environment builds and scheduler messages


CURRENT_ENVIRONMENT = "current"
LOCAL_TARGET = "local"


# ------------------------------------------------------------------ names
def target_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInput(
            f"Invalid compute target name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit."
        )
    return name


def environment_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInput(
            f"Invalid environment name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit."
        )
    return name


def script_path(path: Any) -> str:
    """The script to run, relative to the source directory, without '..'."""
    if not isinstance(path, str) or not path.strip():
        raise InvalidInput("A ScriptRunConfig needs a script, e.g. script='train.py'.")
    if path.startswith("/") or "\\" in path or ".." in path.split("/") or "\x00" in path:
        raise InvalidInput(
            f"Script {path!r} must be a path relative to the source directory, without '..'."
        )
    return path


def data_folders(values: Any) -> dict[str, str | None]:
    """A job's data folders: relative folder -> stored folder id (or None: an empty one)."""
    if not values:
        return {}
    if not isinstance(values, dict):
        raise InvalidInput("data_folders must be an object of folders to stored folder ids.")
    out: dict[str, str | None] = {}
    for folder, digest in values.items():
        script_path(folder)
        if digest is not None and not isinstance(digest, str):
            raise InvalidInput(f"Data folder {folder!r}: the stored folder id must be a string.")
        out[folder] = digest
    return out


def arguments(values: Any) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, list | tuple):
        raise InvalidInput("arguments must be a list, e.g. arguments=['--lr', 0.1].")
    if len(values) > MAX_ARGUMENTS:
        raise InvalidInput(f"A job takes at most {MAX_ARGUMENTS} arguments.")
    out = []
    for v in values:
        if isinstance(v, os.PathLike):
            v = os.fspath(v)
        if not isinstance(v, str | int | float | bool):
            raise InvalidInput(f"Argument {v!r} is not a string or a number.")
        text = str(v)
        if "\x00" in text:
            raise InvalidInput("An argument must not contain a NUL byte.")
        out.append(text)
    return out


def environment_variables(values: Any) -> dict[str, str]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InvalidInput("environment_variables must be a dict of NAME -> value.")
    out = {}
    for k, v in values.items():
        if not isinstance(k, str) or not _ENV_VAR_RE.match(k):
            raise InvalidInput(f"Invalid environment variable name {k!r}.")
        if k.startswith(("CUMULO_", "MLFLOW_")):
            raise InvalidInput(
                f"Environment variable {k} is set by the scheduler; choose another name."
            )
        out[k] = str(v)
    return out


def max_run_duration(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidInput(
            f"max_run_duration_seconds must be a positive number of seconds, got {value!r}."
        )
    return int(value) if float(value).is_integer() else int(value) + 1


def priority(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_PRIORITY:
        raise InvalidInput(f"priority must be an integer from -{MAX_PRIORITY} to {MAX_PRIORITY}.")
    return value


def max_retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise InvalidInput(f"max_retries must be an integer from 0 to 10, got {value!r}.")
    return value


# -------------------------------------------------------------- resources
@dataclass(frozen=True)
class Resources(Record):
    """What one job asks of its target: CPUs, GPUs and memory (MiB; ``memory_gb`` in a
    dict is taken too)."""

    cpus: float | None = None
    gpus: int = 0
    memory_mb: int | None = None

    @classmethod
    def parse(cls, value: Any) -> Resources:
        if value is None:
            return cls()
        if isinstance(value, Resources):
            data = value.to_dict()
        elif isinstance(value, dict):
            data = dict(value)
            if "memory" in data and "memory_mb" not in data:
                data["memory_mb"] = data.pop("memory")
            gb = data.pop("memory_gb", None)
            if gb is not None and "memory_mb" not in data:
                if isinstance(gb, bool) or not isinstance(gb, int | float) or gb <= 0:
                    raise InvalidInput(f"resources.memory_gb must be above 0, got {gb!r}.")
                data["memory_mb"] = math.ceil(gb * 1024)
        else:
            raise InvalidInput("resources must be a dict like {'cpus': 1, 'gpus': 0}.")
        unknown = set(data) - {"cpus", "gpus", "memory_mb"}
        if unknown:
            raise InvalidInput(
                f"Unknown resources {sorted(unknown)}; use cpus, gpus and memory_mb (or memory_gb)."
            )
        cpus, gpus, mem = data.get("cpus"), data.get("gpus", 0) or 0, data.get("memory_mb")
        if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, int | float)):
            raise InvalidInput(f"resources.cpus must be a number, got {cpus!r}.")
        if cpus is not None and cpus <= 0:
            raise InvalidInput("resources.cpus must be greater than 0.")
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
            raise InvalidInput(f"resources.gpus must be a whole number >= 0, got {gpus!r}.")
        if mem is not None and (isinstance(mem, bool) or not isinstance(mem, int) or mem <= 0):
            raise InvalidInput(f"resources.memory_mb must be a positive integer, got {mem!r}.")
        return cls(cpus=None if cpus is None else float(cpus), gpus=gpus, memory_mb=mem)


# ----------------------------------------------------------- environments
@dataclass(frozen=True)
class EnvironmentSpec(Record):
    """What an environment is made of. ``python=None`` means the submitter's version."""

    pip_requirements: list[str] = field(default_factory=list)
    python: str | None = None
    environment_variables: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> EnvironmentSpec:
        reqs = data.get("pip_requirements") or []
        if isinstance(reqs, str) or not isinstance(reqs, list | tuple):
            raise InvalidInput("pip_requirements must be a list of requirement strings.")
        clean = []
        for r in reqs:
            if not isinstance(r, str) or "\n" in r or "\x00" in r:
                raise InvalidInput(f"Invalid pip requirement {r!r}: one requirement per item.")
            line = r.strip()
            if line.startswith("-"):
                clean.append(pip_option(line))
            elif line and not line.startswith("#"):
                clean.append(line)
        python = data.get("python")
        if python is not None and (
            not isinstance(python, str) or not re.match(r"^\d+(\.\d+){0,2}$", python)
        ):
            raise InvalidInput(f"python must be a version like '3.11', got {python!r}.")
        return cls(
            pip_requirements=clean,
            python=python,
            environment_variables=environment_variables(data.get("environment_variables")),
        )

    @property
    def build_hash(self) -> str:
        """Identifies the virtual environment to build (variables don't change it)."""
        return spec_hash({"python": self.python, "pip": self.pip_requirements})

    @property
    def full_hash(self) -> str:
        """Identifies a registered version: any change makes a new version."""
        return spec_hash(self.to_dict())

    @property
    def needs_build(self) -> bool:
        return bool(self.pip_requirements) or self.python is not None


# pip options a requirements list may carry: where packages come from and which
# builds to take. -r, -c and -e name files next to a requirements file, which a
# spec does not carry.
PIP_OPTIONS_WITH_VALUE = {
    "--index-url": "--index-url",
    "-i": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "--find-links": "--find-links",
    "-f": "--find-links",
    "--trusted-host": "--trusted-host",
    "--no-binary": "--no-binary",
    "--only-binary": "--only-binary",
}
PIP_FLAGS = {"--pre", "--no-index", "--prefer-binary"}


def pip_option(line: str) -> str:
    """One pip option of a requirements list, checked and spelled out (``--opt value``)."""
    if line.startswith("--"):
        name, _, value = line.replace("=", " ", 1).partition(" ")
    else:  # a short option: "-f DIR" or "-fDIR"
        name, value = line[:2], line[2:]
    value = value.strip()
    if name in PIP_FLAGS and not value:
        return name
    if name in PIP_OPTIONS_WITH_VALUE and value and " " not in value:
        return f"{PIP_OPTIONS_WITH_VALUE[name]} {value}"
    allowed = sorted({*PIP_OPTIONS_WITH_VALUE.values(), *PIP_FLAGS})
    raise InvalidInput(
        f"pip option {line!r} is not allowed in pip_requirements: use one of "
        f"{', '.join(allowed)} (each with its value where it takes one)."
    )


def spec_hash(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class EnvironmentInfo(Record):
    workspace: str
    name: str
    version: int
    spec: dict[str, Any]
    build_hash: str
    created_at: int
    build_status: str = BuildStatus.NOT_BUILT.value
    build_log: str = ""

    @property
    def env_spec(self) -> EnvironmentSpec:
        return EnvironmentSpec.parse(self.spec)


# ---------------------------------------------------------------- targets
# The start of a target setting its server stored encrypted (a key, a password): never shown.
SEALED = "sealed:"


@dataclass(frozen=True)
class ComputeTargetInfo(Record):
    """A compute target: ``kind`` names its type (``cumulo.compute``), ``config`` its settings."""

    workspace: str
    name: str
    kind: str
    config: dict[str, Any]
    created_at: int

    @property
    def public_config(self) -> dict[str, Any]:
        """The settings as shown: a sealed secret as ``"***"``."""
        return {
            k: "***" if isinstance(v, str) and v.startswith(SEALED) else v
            for k, v in self.config.items()
        }

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "config": self.public_config}


# --------------------------------------------------------------- snapshots
@dataclass(frozen=True)
class SnapshotInfo(Record):
    workspace: str
    hash: str
    size: int
    file_count: int
    created_at: int
    files: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class JobConfig(Record):
    """A submitted ``ScriptRunConfig`` as stored with its job."""

    script: str
    snapshot: str
    arguments: list[str] = field(default_factory=list)
    compute_target: str = LOCAL_TARGET
    environment: str = CURRENT_ENVIRONMENT
    environment_version: int | None = None
    max_run_duration_seconds: int | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    source_directory: str = ""
    # Seconds between two samples of the run's system metrics; None: the workspace's
    # setting, 0: none.
    system_metrics_interval: float | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)  # dataset versions it reads
    # Folders of the job's working directory (relative) -> the stored folder (a snapshot
    # id) unpacked there before the script starts, or None for an empty folder.
    data_folders: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class JobInfo(Record):
    run_id: str
    workspace: str
    target: str
    kind: str
    config: dict[str, Any]
    state: str
    priority: int
    attempts: int
    max_retries: int
    submitted_at: int
    seq: int = 0
    lease_owner: str | None = None
    lease_expires_at: int | None = None
    handle: dict[str, Any] | None = None
    node: str | None = None
    submitter_role: str | None = None  # caps the job's own token

    @property
    def job_config(self) -> JobConfig:
        return JobConfig.from_dict(self.config)


@dataclass(frozen=True)
class LogChunk(Record):
    seq: int
    at: int
    stream: str
    text: str


@dataclass(frozen=True)
class LogPage(Record):
    chunks: list[LogChunk]
    next_seq: int  # pass back as ``after`` to get what comes next

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(
            chunks=[
                c if isinstance(c, LogChunk) else LogChunk.from_dict(c) for c in data["chunks"]
            ],
            next_seq=int(data["next_seq"]),
        )


@dataclass(frozen=True)
class PoolNode(Record):
    id: str
    target: str
    state: str  # starting | idle | busy | stopped
    pid: int | None
    started_at: int
    heartbeat_at: int
    run_id: str | None = None
    stopped_at: int | None = None
    host: str | None = None  # the host its pid belongs to


# ------------------------------------------------------------------ reasons
def exit_reason(code: int, stderr_tail: list[str] | None = None) -> dict[str, Any]:
    """The error of a run whose script ended with ``code`` (negative: a signal)."""
    tail = [line.rstrip("\n") for line in (stderr_tail or [])][-LOG_TAIL_LINES:]
    if code < 0:
        name = signal_name(-code)
        message = f"The script was killed by signal {name}."
        return {"code": "Killed", "message": message, "signal": name, "stderr_tail": tail}
    message = f"The script exited with code {code}."
    if tail:
        message += " Last lines of stderr:\n" + "\n".join(tail[-5:])
    return {"code": "ScriptFailed", "message": message, "exit_code": code, "stderr_tail": tail}


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
