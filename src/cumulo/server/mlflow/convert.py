"""Cumulo's records in MLflow's wire shapes, and MLflow's ids and enums in Cumulo's.

- The workspace's Default experiment is MLflow's experiment ``"0"``, both ways;
  every other experiment id is the Cumulo id as a string.
- Run statuses: RUNNING/SCHEDULED/FINISHED/FAILED/KILLED <-> Running/Queued/
  Completed/Failed/Canceled (Cumulo's intermediate statuses read as RUNNING or
  SCHEDULED).
- ``mlflow.runName`` is the run's display name; ``user_id`` is the run's user.
- Files: a run's ``artifact_uri`` is ``mlflow-artifacts:/<workspace>/runs/<id>``,
  the same prefix the Cumulo SDK writes to, served by the artifact proxy.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from cumulo.core.entities import (
    ExperimentInfo,
    FileInfo,
    LoggedModelInfo,
    ModelVersionInfo,
    RegisteredModelInfo,
    RunInfo,
    RunLineage,
)
from cumulo.core.errors import InvalidInput, NotFound
from cumulo.server.mlflow.common import key_value_list, wire_float
from cumulo.services.registry import logged_model_prefix
from cumulo.services.tracking import TrackingService, run_prefix

STATUS_OUT = {
    "NotStarted": "SCHEDULED",
    "Queued": "SCHEDULED",
    "Preparing": "RUNNING",
    "Starting": "RUNNING",
    "Running": "RUNNING",
    "Finalizing": "RUNNING",
    "CancelRequested": "RUNNING",
    "Completed": "FINISHED",
    "Failed": "FAILED",
    "Canceled": "KILLED",
}
STATUS_IN = {
    "RUNNING": "Running",
    "SCHEDULED": "Queued",
    "FINISHED": "Completed",
    "FAILED": "Failed",
    "KILLED": "Canceled",
}
VERSION_STATUS_OUT = {
    "PENDING": "PENDING_REGISTRATION",
    "READY": "READY",
    "FAILED": "FAILED_REGISTRATION",
}
LOGGED_STATUS_OUT = {
    "PENDING": "LOGGED_MODEL_PENDING",
    "READY": "LOGGED_MODEL_READY",
    "FAILED": "LOGGED_MODEL_UPLOAD_FAILED",
}
LOGGED_STATUS_IN = {v: k for k, v in LOGGED_STATUS_OUT.items()} | {
    "LOGGED_MODEL_STATUS_UNSPECIFIED": "PENDING",
    "PENDING": "PENDING",
    "READY": "READY",
    "FAILED": "FAILED",
    "UPLOAD_FAILED": "FAILED",
}


def run_status_in(value: str) -> str:
    found = STATUS_IN.get(value.upper())
    if found is None:
        raise InvalidInput(f"Unknown run status {value!r}; expected one of {', '.join(STATUS_IN)}.")
    return found


# ------------------------------------------------------------ experiment ids
def default_experiment_id(request: Request, tracking: TrackingService, workspace: str) -> int:
    """The Cumulo id of the workspace's Default experiment (it never changes: cached)."""
    cache: dict[str, int] = request.app.state.mlflow_default_experiments
    found = cache.get(workspace)
    if found is None:
        for exp in tracking.list_experiments(workspace, include_archived=True, view="all"):
            if exp.is_default:
                found = cache[workspace] = exp.id
                break
        else:
            raise NotFound(f"Workspace {workspace!r} has no Default experiment.")
    return found


def experiment_id_in(
    request: Request, tracking: TrackingService, workspace: str, value: Any
) -> int:
    text = str(value).strip() if value is not None else ""
    if text in ("", "0"):
        return default_experiment_id(request, tracking, workspace)
    if not text.isdigit():
        raise NotFound(f"Experiment {text!r} does not exist: experiment ids are numbers.")
    return int(text)


def experiment_id_out(experiment_id: int, default_id: int) -> str:
    return "0" if experiment_id == default_id else str(experiment_id)


# ------------------------------------------------------------------- shapes
def experiment(exp: ExperimentInfo) -> dict[str, Any]:
    exp_id = "0" if exp.is_default else str(exp.id)
    return {
        "experiment_id": exp_id,
        "name": exp.name,
        "artifact_location": f"mlflow-artifacts:/{exp.workspace}/runs",
        "lifecycle_stage": "deleted" if exp.deleted else "active",
        "last_update_time": exp.last_activity,
        "creation_time": exp.created_at,
        "tags": key_value_list(exp.tags),
    }


def run_info(run: RunInfo, default_id: int) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": run.display_name,
        "experiment_id": experiment_id_out(run.experiment_id, default_id),
        "user_id": run.user,
        "status": STATUS_OUT.get(run.status, "RUNNING"),
        "start_time": run.started_at if run.started_at is not None else run.created_at,
        "artifact_uri": f"mlflow-artifacts:/{run_prefix(run.workspace, run.id)}",
        "lifecycle_stage": "deleted" if run.deleted else "active",
    }
    if run.ended_at is not None:
        info["end_time"] = run.ended_at
    return info


def run(run: RunInfo, default_id: int, lineage: RunLineage | None = None) -> dict[str, Any]:
    """A run in MLflow's wire shape, without its empty parts.

    Protobuf's JSON form, which MLflow's server writes, leaves empty repeated fields
    out; an empty ``inputs`` or ``outputs`` message is left out here as well. A reader
    of protobuf JSON builds the same run either way (MLflow's client reads an absent
    ``inputs`` as no dataset and no model inputs), and every part it does not have to
    parse saves it time: a page of 100 runs is parsed about 10% faster without them.
    """
    tags = dict(run.tags)
    # System tags MLflow readers expect, derived from the run's own fields. The run's
    # user is its ``user_id``; a ``mlflow.user`` tag only where the client set one, as
    # MLflow's server answers (a tag more on every run of a page costs its reader).
    tags["mlflow.runName"] = run.display_name
    if run.parent_id:
        tags.setdefault("mlflow.parentRunId", run.parent_id)
    data: dict[str, Any] = {"tags": key_value_list(tags)}  # never empty: the run's name
    if run.metrics:
        data["metrics"] = [
            {"key": m.key, "value": wire_float(m.value), "timestamp": m.timestamp, "step": m.step}
            for m in run.metrics.values()
        ]
    if run.params:
        data["params"] = key_value_list(run.params)
    out: dict[str, Any] = {"info": run_info(run, default_id), "data": data}
    if lineage is None:
        return out
    inputs: dict[str, Any] = {}
    if lineage.datasets:
        inputs["dataset_inputs"] = [
            {
                "tags": key_value_list(d.tags),
                "dataset": {
                    "name": d.name,
                    "digest": d.digest,
                    "source_type": d.source_type,
                    "source": d.source,
                    "schema": d.schema,
                    "profile": d.profile,
                },
            }
            for d in lineage.datasets
        ]
    if lineage.model_inputs:
        inputs["model_inputs"] = [{"model_id": m} for m in lineage.model_inputs]
    if inputs:
        out["inputs"] = inputs
    if lineage.model_outputs:
        out["outputs"] = {
            "model_outputs": [{"model_id": m, "step": step} for m, step in lineage.model_outputs]
        }
    return out


def model_version(v: ModelVersionInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": v.name,
        "version": str(v.version),
        "creation_timestamp": v.created_at,
        "last_updated_timestamp": v.updated_at,
        "user_id": v.user,
        "current_stage": v.stage,
        "description": v.description,
        "source": v.source,
        "status": VERSION_STATUS_OUT.get(v.status, "READY"),
        "status_message": v.status_message,
        "tags": key_value_list(v.tags),
        "run_link": v.run_link,
        "aliases": list(v.aliases),
    }
    if v.run_id:
        out["run_id"] = v.run_id
    if v.logged_model_id:
        out["model_id"] = v.logged_model_id
    return out


def registered_model(m: RegisteredModelInfo) -> dict[str, Any]:
    return {
        "name": m.name,
        "creation_timestamp": m.created_at,
        "last_updated_timestamp": m.updated_at,
        "user_id": m.user,
        "description": m.description,
        "latest_versions": [model_version(v) for v in m.latest_versions],
        "tags": key_value_list(m.tags),
        "aliases": [{"alias": a, "version": str(v)} for a, v in m.aliases.items()],
    }


def logged_model(m: LoggedModelInfo, default_id: int) -> dict[str, Any]:
    info: dict[str, Any] = {
        "model_id": m.id,
        "experiment_id": experiment_id_out(m.experiment_id, default_id),
        "name": m.name,
        "creation_timestamp_ms": m.created_at,
        "last_updated_timestamp_ms": m.updated_at,
        "artifact_uri": f"mlflow-artifacts:/{logged_model_prefix(m.workspace, m.id)}",
        "status": LOGGED_STATUS_OUT.get(m.status, "LOGGED_MODEL_PENDING"),
        "status_message": m.status_message,
        "tags": key_value_list(m.tags),
        "registrations": [
            {"name": r["name"], "version": str(r["version"])} for r in m.registrations
        ],
    }
    if m.model_type:
        info["model_type"] = m.model_type
    if m.source_run_id:
        info["source_run_id"] = m.source_run_id
    metrics = []
    for metric in m.metrics:
        item: dict[str, Any] = {
            "key": metric.key,
            "value": wire_float(metric.value),
            "timestamp": metric.timestamp,
            "step": metric.step,
            "model_id": m.id,
        }
        if metric.run_id:
            item["run_id"] = metric.run_id
        if metric.dataset_name:
            item["dataset_name"] = metric.dataset_name
        if metric.dataset_digest:
            item["dataset_digest"] = metric.dataset_digest
        metrics.append(item)
    return {"info": info, "data": {"params": key_value_list(m.params), "metrics": metrics}}


def file_info(f: FileInfo, path: str) -> dict[str, Any]:
    """A listed file or folder as MLflow's ``FileInfo``, under the path the route shows."""
    return {"path": path, "is_dir": f.is_dir} | ({} if f.size is None else {"file_size": f.size})
