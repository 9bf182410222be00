"""``HttpTracking``: workspaces, experiments, runs, metrics and files over HTTP.

Every method has the signature and return type of its ``TrackingService``
twin (a test holds them to it), so ``Workspace`` cannot tell the two apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, cast
from urllib.parse import quote

import httpx
import orjson

from cumulo.core import validation
from cumulo.core.entities import (
    ExperimentInfo,
    FileInfo,
    MetricRecord,
    RunInfo,
    RunPage,
    WorkspaceInfo,
    decode_float,
    encode_float,
)
from cumulo.core.errors import InvalidInput
from cumulo.sdk.http.client import HttpClient, q, read_chunks, stream_position, ws_path


class HttpTracking:
    """The tracking calls of a ``cumulo server``'s workspace API."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def _run(self, workspace: str, run_id: str) -> str:
        return f"{ws_path(workspace)}/runs/{q(run_id)}"

    # ------------------------------------------------------------ workspaces
    def create_workspace(
        self, name: str, exist_ok: bool = False, description: str = ""
    ) -> WorkspaceInfo:
        body = {"name": name, "exist_ok": exist_ok, "description": description}
        return WorkspaceInfo.from_dict(self.client.call("POST", "/workspaces", body))

    def get_workspace(self, name: str) -> WorkspaceInfo:
        return WorkspaceInfo.from_dict(self.client.call("GET", ws_path(name)))

    def list_workspaces(self) -> list[WorkspaceInfo]:
        data = self.client.call("GET", "/workspaces")
        return [WorkspaceInfo.from_dict(w) for w in data["workspaces"]]

    # ----------------------------------------------------------- experiments
    def get_or_create_experiment(self, workspace: str, name: str) -> ExperimentInfo:
        body = {"name": name, "get_or_create": True}
        return ExperimentInfo.from_dict(
            self.client.call("POST", ws_path(workspace) + "/experiments", body)
        )

    def create_experiment(
        self, workspace: str, name: str, tags: dict[str, str] | None = None
    ) -> ExperimentInfo:
        body = {"name": name, "tags": tags}
        return ExperimentInfo.from_dict(
            self.client.call("POST", ws_path(workspace) + "/experiments", body)
        )

    def get_experiment(
        self, workspace: str, experiment_id: int | None = None, name: str | None = None
    ) -> ExperimentInfo:
        base = ws_path(workspace) + "/experiments"
        if experiment_id is not None:
            return ExperimentInfo.from_dict(self.client.call("GET", f"{base}/{int(experiment_id)}"))
        if name is None:
            raise InvalidInput("Give an experiment id or name.")
        return ExperimentInfo.from_dict(
            self.client.call("GET", base + "/by-name", params={"name": name})
        )

    def list_experiments(
        self, workspace: str, include_archived: bool = False, view: str = "active"
    ) -> list[ExperimentInfo]:
        params = {"include_archived": include_archived, "view": view}
        data = self.client.call("GET", ws_path(workspace) + "/experiments", params=params)
        return [ExperimentInfo.from_dict(e) for e in data["experiments"]]

    def update_experiment(
        self,
        workspace: str,
        experiment_id: int,
        name: str | None = None,
        archived: bool | None = None,
        deleted: bool | None = None,
    ) -> ExperimentInfo:
        body = {"name": name, "archived": archived, "deleted": deleted}
        path = f"{ws_path(workspace)}/experiments/{int(experiment_id)}"
        return ExperimentInfo.from_dict(self.client.call("PATCH", path, body))

    def set_experiment_tag(
        self, workspace: str, experiment_id: int, key: str, value: str | None
    ) -> None:
        path = f"{ws_path(workspace)}/experiments/{int(experiment_id)}/tags"
        self.client.call("POST", path, {"key": key, "value": value})

    def delete_experiment(self, workspace: str, experiment_id: int) -> list[str]:
        path = f"{ws_path(workspace)}/experiments/{int(experiment_id)}"
        return list(self.client.call("DELETE", path)["run_ids"])

    # ------------------------------------------------------------------ runs
    def create_run(
        self,
        workspace: str,
        experiment_id: int,
        display_name: str | None = None,
        parent_id: str | None = None,
        kind: str = "interactive",
        status: str = "Running",
        tags: dict[str, str] | None = None,
        user: str = "",
        compute_target: str | None = None,
        start_time: int | None = None,
    ) -> RunInfo:
        body = {
            "experiment_id": experiment_id,
            "display_name": display_name,
            "parent_id": parent_id,
            "kind": kind,
            "status": status,
            "tags": {k: str(v) for k, v in (tags or {}).items()},
            "user": user,
            "compute_target": compute_target,
            "start_time": start_time,
        }
        return RunInfo.from_dict(self.client.call("POST", ws_path(workspace) + "/runs", body))

    def get_run(self, workspace: str, run_id: str) -> RunInfo:
        return RunInfo.from_dict(self.client.call("GET", self._run(workspace, run_id)))

    def find_run(self, workspace: str, id_or_start: str) -> RunInfo:
        data = self.client.call(
            "GET", ws_path(workspace) + "/runs/find", params={"id": id_or_start}
        )
        return RunInfo.from_dict(data)

    def run_keys(self, workspace: str, experiment_id: int) -> dict[str, list[str]]:
        data = self.client.call(
            "GET", f"{ws_path(workspace)}/experiments/{int(experiment_id)}/keys"
        )
        return {kind: list(data.get(kind, [])) for kind in ("metrics", "params", "tags")}

    def search_runs(
        self,
        workspace: str,
        experiment_ids: Sequence[int] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
        statuses: Sequence[str] | None = None,
        tags: dict[str, str | None] | None = None,
        parent_id: str | None = None,
        top_level_only: bool = False,
        view: str = "active",
    ) -> RunPage:
        body = {
            "experiment_ids": None if experiment_ids is None else list(experiment_ids),
            "filter": filter,
            "order_by": order_by
            if order_by is None or isinstance(order_by, str)
            else list(order_by),
            "max_results": max_results,
            "page_token": page_token,
            "statuses": None if statuses is None else list(statuses),
            "tags": tags,
            "parent_id": parent_id,
            "top_level_only": top_level_only,
            "view": view,
        }
        return RunPage.from_dict(
            self.client.call("POST", ws_path(workspace) + "/runs/search", body)
        )

    def set_run_status(
        self,
        workspace: str,
        run_id: str,
        status: str,
        error: dict[str, Any] | None = None,
        at: int | None = None,
    ) -> RunInfo:
        body = {"status": status, "error": error, "at": at}
        path = self._run(workspace, run_id) + "/status"
        return RunInfo.from_dict(self.client.call("POST", path, body))

    def update_run(
        self,
        workspace: str,
        run_id: str,
        display_name: str | None = None,
        deleted: bool | None = None,
    ) -> RunInfo:
        body = {"display_name": display_name, "deleted": deleted}
        return RunInfo.from_dict(self.client.call("PATCH", self._run(workspace, run_id), body))

    def delete_run(self, workspace: str, run_id: str) -> list[str]:
        return list(self.client.call("DELETE", self._run(workspace, run_id))["run_ids"])

    # --------------------------------------------------------------- logging
    def log_batch(
        self,
        workspace: str,
        run_id: str,
        metrics: Iterable[Sequence[Any]] | Mapping[str, Sequence[Any]] = (),
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        records: Iterable[dict[str, Any] | MetricRecord] = (),
        batch_id: str | None = None,
    ) -> bool:
        """Send a batch; returns False if the server had already written this ``batch_id``.

        ``metrics`` are rows ``(key, value, step, timestamp_ms)`` or columns
        ``{"key": [...], "value": [...], "step": [...], "timestamp": [...]}``
        (the background writer's form, sent as it is: smaller and faster).
        """
        body = {
            "metrics": (
                _encode_columns(metrics)
                if isinstance(metrics, Mapping)
                else _encode_points(metrics)
            ),
            "params": None if params is None else {k: _jsonable(v) for k, v in params.items()},
            "tags": None if tags is None else {k: _jsonable(v) for k, v in tags.items()},
            "records": [r.to_dict() if isinstance(r, MetricRecord) else r for r in records],
            "batch_id": batch_id,
        }
        return bool(
            self.client.call("POST", self._run(workspace, run_id) + "/log-batch", body)["written"]
        )

    def set_tags(self, workspace: str, run_id: str, tags: dict[str, Any]) -> None:
        body = {"tags": {k: _jsonable(v) for k, v in tags.items()}}
        self.client.call("POST", self._run(workspace, run_id) + "/tags", body)

    def delete_tags(self, workspace: str, run_id: str, keys: list[str]) -> None:
        self.client.call(
            "POST", self._run(workspace, run_id) + "/tags/delete", {"keys": list(keys)}
        )

    def add_properties(self, workspace: str, run_id: str, properties: dict[str, Any]) -> None:
        body = {"properties": {k: _jsonable(v) for k, v in properties.items()}}
        self.client.call("POST", self._run(workspace, run_id) + "/properties", body)

    # --------------------------------------------------------------- reading
    def get_metric_history(
        self,
        workspace: str,
        run_id: str,
        key: str,
        start_step: int | None = None,
        end_step: int | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> dict[str, list[Any]]:
        params = {
            "key": key,
            "start_step": start_step,
            "end_step": end_step,
            "offset": offset,
            "limit": limit,
        }
        path = self._run(workspace, run_id) + "/metrics/history"
        return _decode_series(self.client.call("GET", path, params=params))

    def get_metric_summary(self, workspace: str, run_id: str, key: str) -> dict[str, Any]:
        """Computed here from the series' history, as the service computes it from the store."""
        values = self.get_metric_history(workspace, run_id, key)["value"]
        numbers = [v for v in values if not math.isnan(v)]
        last = values[-1] if values else None
        return {
            "count": len(values),
            "min": min(numbers) if numbers else None,
            "max": max(numbers) if numbers else None,
            "last": None if last is None or math.isnan(last) else last,
        }

    def get_metric_chart(
        self,
        workspace: str,
        run_id: str,
        key: str,
        axis: str = "step",
        start: int | None = None,
        end: int | None = None,
        points: int = 2000,
    ) -> dict[str, Any]:
        params = {"key": key, "axis": axis, "start": start, "end": end, "points": points}
        chart = self.client.call(
            "GET", self._run(workspace, run_id) + "/metrics/chart", params=params
        )
        chart["y"] = [decode_float(v) if isinstance(v, str) else v for v in chart["y"]]
        return cast(dict[str, Any], chart)

    def get_run_records(self, workspace: str, run_id: str) -> list[MetricRecord]:
        data = self.client.call("GET", self._run(workspace, run_id) + "/records")
        return [MetricRecord.from_dict(r) for r in data["records"]]

    def get_run_metrics(self, workspace: str, run_id: str) -> dict[str, Any]:
        data = self.client.call("GET", self._run(workspace, run_id) + "/metrics")
        data["series"] = {k: _decode_series(v) for k, v in data["series"].items()}
        return cast(dict[str, Any], data)

    # ------------------------------------------------------------- artifacts
    def _artifact(self, workspace: str, run_id: str, path: str) -> str:
        # Checked here as the service checks it, so ".." never reaches a URL
        # (where it would be resolved away instead of refused).
        rel = validation.artifact_path(path)
        return f"{self._run(workspace, run_id)}/artifacts/{quote(rel, safe='/')}"

    def upload_artifact(self, workspace: str, run_id: str, path: str, stream: IO[bytes]) -> int:
        """Send a file's content in chunks, never whole in memory; returns its size."""
        url = self._artifact(workspace, run_id, path)
        start = stream_position(stream)

        def build() -> httpx.Request:
            if start is not None:
                stream.seek(start)  # another server gets the whole file again
            return self.client.request(
                "PUT",
                url,
                content=read_chunks(stream),
                headers={"content-type": "application/octet-stream"},
            )

        response = self.client.send(build(), rebuild=build if start is not None else None)
        return int(orjson.loads(response.content)["size"])

    def list_artifacts(
        self, workspace: str, run_id: str, path: str = "", recursive: bool = False
    ) -> list[FileInfo]:
        params = {"path": path, "recursive": recursive}
        data = self.client.call("GET", self._run(workspace, run_id) + "/artifacts", params=params)
        return [FileInfo.from_dict(f) for f in data["files"]]

    def open_artifact(self, workspace: str, run_id: str, path: str) -> IO[bytes]:
        """A file-like object reading the artifact as it streams from the server."""
        return self.client.stream(
            self.client.request("GET", self._artifact(workspace, run_id, path))
        )

    def delete_artifact(self, workspace: str, run_id: str, path: str) -> None:
        self.client.call("DELETE", self._artifact(workspace, run_id, path))

    def artifact_size(self, workspace: str, run_id: str, path: str) -> int:
        request = self.client.request("GET", self._artifact(workspace, run_id, path))
        response = self.client.send(request, stream=True)
        response.close()
        return int(response.headers["content-length"])


def _jsonable(value: Any) -> Any:
    """Values of params and tags: JSON scalars as they are, anything else as its text."""
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        return encode_float(value) if not math.isfinite(value) else value
    return str(value)


def _encode_points(metrics: Iterable[Sequence[Any]]) -> list[Any]:
    points = metrics if isinstance(metrics, list) else list(metrics)
    try:
        if all(math.isfinite(p[1]) for p in points):  # the common case: send as they are
            return points
    except (TypeError, IndexError, ValueError):
        pass  # not all numbers: the server says which one is wrong
    return [_encode_point(p) for p in points]


def _encode_point(point: Sequence[Any]) -> Any:
    if len(point) < 2:
        return list(point)
    return [point[0], _encode_value(point[1]), *point[2:]]


def _encode_columns(columns: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    out = dict(columns)
    values = out.get("value")
    if isinstance(values, (list, tuple)) and not _all_finite(values):
        out["value"] = [_encode_value(v) for v in values]
    return out


def _all_finite(values: Sequence[Any]) -> bool:
    # A NaN or an infinity makes the sum NaN or infinite (so does an overflow of
    # finite values, which only costs the slow path); one pass in C.
    try:
        return math.isfinite(sum(values))
    except (TypeError, OverflowError):  # not all numbers: the server says which one is wrong
        return False


def _encode_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return encode_float(value)
    if not isinstance(value, (int, float, str, type(None))):
        return str(value) if not hasattr(value, "__float__") else float(value)
    return value


def _decode_series(series: dict[str, list[Any]]) -> dict[str, list[Any]]:
    values = series.get("value")
    if values and any(isinstance(v, str) for v in values):
        series["value"] = [decode_float(v) if isinstance(v, str) else v for v in values]
    return series
