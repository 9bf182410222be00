"""Plain domain records passed between layers and over the wire (as dicts)."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Self

from cumulo.core.errors import InvalidInput
from cumulo.core.status import RunStatus


class Record:
    """Dict conversion shared by every entity (the wire format of both transports)."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = dataclasses.asdict(self)  # type: ignore[call-overload]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class WorkspaceInfo(Record):
    name: str
    created_at: int  # all times are milliseconds since the epoch
    description: str = ""


@dataclass(frozen=True)
class ExperimentInfo(Record):
    id: int
    workspace: str
    name: str
    created_at: int
    last_activity: int
    archived: bool = False
    deleted: bool = False
    is_default: bool = False
    run_count: int = 0
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusChange(Record):
    status: str
    at: int


@dataclass(frozen=True)
class LatestMetric(Record):
    key: str
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True)
class RunInfo(Record):
    """A run with everything a listing shows: attributes, params, tags and latest metrics."""

    id: str
    workspace: str
    experiment_id: int
    experiment_name: str
    number: int
    display_name: str
    status: str
    created_at: int
    started_at: int | None = None
    ended_at: int | None = None
    user: str = ""
    parent_id: str | None = None
    kind: str = "interactive"
    deleted: bool = False
    compute_target: str | None = None
    error: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, LatestMetric] = field(default_factory=dict)
    status_history: list[StatusChange] = field(default_factory=list)

    @property
    def run_status(self) -> RunStatus:
        return RunStatus(self.status)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (or to now while the run is active)."""
        if self.started_at is None:
            return None
        return ((self.ended_at or now_ms()) - self.started_at) / 1000.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        data = dict(data)
        data["metrics"] = {
            k: v if isinstance(v, LatestMetric) else LatestMetric.from_dict(decode_floats(v))
            for k, v in (data.get("metrics") or {}).items()
        }
        data["status_history"] = [
            s if isinstance(s, StatusChange) else StatusChange.from_dict(s)
            for s in data.get("status_history") or []
        ]
        return super().from_dict(data)


@dataclass(frozen=True)
class RunPage(Record):
    runs: list[RunInfo]
    next_page_token: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(
            runs=[RunInfo.from_dict(r) for r in data["runs"]],
            next_page_token=data.get("next_page_token"),
        )


@dataclass(frozen=True)
class MetricRecord(Record):
    """A non-scalar logged value: a list, a row, a table or an image."""

    name: str
    kind: str  # "list" | "row" | "table" | "image"
    value: Any
    timestamp: int
    description: str = ""


def gather_records(records: Iterable[MetricRecord]) -> dict[str, tuple[str, Any]]:
    """``name -> (kind, value)`` over a run's records, in the order they were logged.

    Rows of one name become its columns (a cell a row lacks is None), images
    the list of their paths, and a list or a table is its latest value.
    """
    out: dict[str, tuple[str, Any]] = {}
    for r in records:
        if r.kind == "row":
            columns = out.setdefault(r.name, ("row", {}))[1]
            n = max((len(v) for v in columns.values()), default=0)
            for col, value in r.value.items():
                columns.setdefault(col, [None] * n).append(value)
            for values in columns.values():
                values.extend([None] * (n + 1 - len(values)))
        elif r.kind == "image":
            if isinstance(r.value, dict) and r.value.get("path"):
                out.setdefault(r.name, ("image", []))[1].append(r.value["path"])
        else:
            out[r.name] = (r.kind, r.value)
    return out


@dataclass(frozen=True)
class FileInfo(Record):
    path: str
    is_dir: bool
    size: int | None = None


@dataclass(frozen=True)
class TokenInfo(Record):
    """What is known about a token (never the token itself)."""

    id: str
    workspace: str  # a workspace name, or "*" for every workspace
    role: str
    created_at: int
    description: str = ""
    revoked_at: int | None = None
    expires_at: int | None = None  # refused from then on; None: until revoked
    run_id: str | None = None  # a job's own token: the job's run

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expired(self, at_ms: int) -> bool:
        return self.expires_at is not None and at_ms >= self.expires_at


@dataclass(frozen=True)
class AuditEntry(Record):
    """Who (token), what (method, route, target), when and with which result."""

    at: int
    workspace: str | None  # None: the server itself
    token_id: str | None  # None: no token, or a server without token checks
    client: str
    method: str
    route: str
    target: str
    status: int
    outcome: str  # "ok", "refused", "unauthenticated", "rate-limited" or "failed"
    id: int = 0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# JSON cannot carry NaN or infinities: both transports send them as strings.
_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def decode_float(value: float | str | int) -> float:
    if isinstance(value, str):
        if value in _SPECIAL:
            return _SPECIAL[value]
        return float(value)
    return float(value)


def decode_floats(data: dict[str, Any]) -> dict[str, Any]:
    if "value" in data:
        data = dict(data)
        data["value"] = decode_float(data["value"])
    return data


# ------------------------------------------------------------------ registry
# Model version and logged model statuses; stages are MLflow's (deprecated there, kept here).
MODEL_STATUSES = ("PENDING", "READY", "FAILED")
MODEL_STAGES = ("None", "Staging", "Production", "Archived")


# A version's properties, framework and datasets travel as reserved tags, set once
# at registration and searchable like any tag; people cannot set these themselves.
PROPERTY_TAG = "cumulo.property/"
FRAMEWORK_TAG = "cumulo.framework"
DATASETS_TAG = "cumulo.datasets"
RESERVED_TAGS = (PROPERTY_TAG, FRAMEWORK_TAG, DATASETS_TAG)


@dataclass(frozen=True)
class ModelVersionInfo(Record):
    """One version of a registered model; its files live under ``storage_prefix``."""

    workspace: str
    name: str
    version: int
    created_at: int
    updated_at: int
    source: str = ""
    run_id: str | None = None
    logged_model_id: str | None = None
    storage_prefix: str | None = None
    status: str = "READY"
    status_message: str = ""
    stage: str = "None"
    description: str = ""
    framework: str | None = None
    flavors: dict[str, Any] = field(default_factory=dict)
    signature: dict[str, Any] | None = None
    user: str = ""
    run_link: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    @property
    def user_tags(self) -> dict[str, str]:
        """Tags a person set (the reserved ones are read through the properties below)."""
        return {k: v for k, v in self.tags.items() if not k.startswith(RESERVED_TAGS)}

    @property
    def properties(self) -> dict[str, str]:
        """Properties given at registration."""
        cut = len(PROPERTY_TAG)
        return {k[cut:]: v for k, v in self.tags.items() if k.startswith(PROPERTY_TAG)}

    @property
    def model_framework(self) -> str | None:
        """The framework given at registration, else the one the files' MLmodel names."""
        return self.tags.get(FRAMEWORK_TAG) or self.framework

    @property
    def datasets(self) -> list[dict[str, str]]:
        """Datasets given at registration: ``{"scenario": ..., "dataset": ...}`` each."""
        try:
            found = json.loads(self.tags.get(DATASETS_TAG) or "[]")
        except ValueError:
            return []
        return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []


def registration_tags(
    tags: dict[str, Any] | None,
    properties: dict[str, Any] | None = None,
    framework: str | None = None,
    datasets: list[Any] | None = None,
) -> dict[str, str]:
    """A new version's tags: the person's own, then the reserved ones built from the rest."""
    out = {str(k): str(v) for k, v in (tags or {}).items()}
    check_user_tags(out)
    for key, value in (properties or {}).items():
        out[PROPERTY_TAG + str(key)] = str(value)
    if framework:
        out[FRAMEWORK_TAG] = str(framework)
    if datasets:
        out[DATASETS_TAG] = json.dumps([_dataset_ref(d) for d in datasets])
    return out


def check_user_tags(tags: dict[str, Any]) -> None:
    """Refuses tags a person may not set (the reserved prefixes)."""
    for key in tags:
        if str(key).startswith(RESERVED_TAGS):
            raise InvalidInput(
                f"Tag {key!r} uses a reserved prefix ({', '.join(RESERVED_TAGS)}); "
                "it is set at registration."
            )


def _dataset_ref(item: Any) -> dict[str, str]:
    """``{"scenario", "dataset"}``, and ``"version"`` for a registered dataset version."""
    scenario, found = ("", item)
    if isinstance(item, (tuple, list)) and len(item) == 2:
        scenario, found = item
    ref = {"scenario": str(scenario), "dataset": str(getattr(found, "name", found))}
    version = getattr(found, "version", None)
    if isinstance(version, int) and not isinstance(version, bool):
        ref["version"] = str(version)
    return ref


@dataclass(frozen=True)
class RegisteredModelInfo(Record):
    workspace: str
    name: str
    created_at: int
    updated_at: int
    description: str = ""
    user: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    latest_versions: list[ModelVersionInfo] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        data = dict(data)
        data["latest_versions"] = [
            v if isinstance(v, ModelVersionInfo) else ModelVersionInfo.from_dict(v)
            for v in data.get("latest_versions") or []
        ]
        return super().from_dict(data)


@dataclass(frozen=True)
class ModelMetric(Record):
    key: str
    value: float
    step: int
    timestamp: int
    run_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


@dataclass(frozen=True)
class LoggedModelInfo(Record):
    """A model's files logged from a run (MLflow 3's LoggedModel), before any registration."""

    id: str
    workspace: str
    experiment_id: int
    name: str
    created_at: int
    updated_at: int
    model_type: str | None = None
    source_run_id: str | None = None
    status: str = "PENDING"
    status_message: str = ""
    user: str = ""
    deleted: bool = False
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[ModelMetric] = field(default_factory=list)
    registrations: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        data = dict(data)
        data["metrics"] = [
            m if isinstance(m, ModelMetric) else ModelMetric.from_dict(decode_floats(m))
            for m in data.get("metrics") or []
        ]
        return super().from_dict(data)


# The tag of a run's dataset input that names what the run read it for ("training").
DATASET_CONTEXT_TAG = "mlflow.data.context"


@dataclass(frozen=True)
class DatasetInput(Record):
    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    schema: str = ""
    profile: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunLineage(Record):
    """What a run read (datasets, logged models) and which logged models it produced."""

    run_id: str
    datasets: list[DatasetInput] = field(default_factory=list)
    model_inputs: list[str] = field(default_factory=list)
    model_outputs: list[tuple[str, int]] = field(default_factory=list)
