"""``HttpTransport``: the SDK's calls over the native REST API of ``cumulo server``.

Every method has the signature and return type of its ``TrackingService``
twin, so ``Workspace`` cannot tell the two apart. One keep-alive connection
pool serves all calls; errors come back as the server raised them (rebuilt
from their ``error_code``), and a server that cannot be reached raises
``Unavailable``, which the background writer retries with the same batch id.

A transport may know several servers of one workspace (its service address):
when one does not answer, a call goes to the next, and the one that answered
is tried first from then on. A call moves on after an answer was possibly
lost only if repeating it is harmless (reads, PUT and DELETE, metric batches
with a batch id, status and tag sets); any call moves on when the connection
was never made.
"""

from __future__ import annotations

import io
import math
import os
import socket
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import quote

import httpx
import orjson

from cumulo.core import validation
from cumulo.core.deployments import DeploymentInfo, EndpointInfo
from cumulo.core.entities import (
    ExperimentInfo,
    FileInfo,
    MetricRecord,
    ModelVersionInfo,
    RunInfo,
    RunPage,
    WorkspaceInfo,
    decode_float,
    encode_float,
)
from cumulo.core.errors import (
    CumuloError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    from_code,
)
from cumulo.sdk.progress import CountingReader, transfer

CHUNK = 1024 * 1024
# Answers of a proxy or load balancer whose server is away: another server may answer.
_AWAY = (502, 503, 504)
_REPEATABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# POSTs that set a value (or read): sent twice, they leave the same state.
_REPEATABLE_POSTS = ("/status", "/tags", "/tags/delete", "/runs/search", "/runs/find")
_JSON = {"content-type": "application/json"}
_DUMPS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _q(part: str) -> str:
    """One path segment, escaped (names are checked by the server, not trusted here)."""
    return quote(str(part), safe="")


class HttpTransport:
    """The tracking calls of a ``cumulo server``'s workspace API, over HTTP.

    Example::

        t = HttpTransport("http://127.0.0.1:5000", token="cumulo_...")
        t.list_workspaces()
    """

    def __init__(
        self, url: str | Sequence[str], token: str | None = None, timeout: float = 120.0
    ) -> None:
        self.urls = service_urls(url)
        self._current = 0  # the server that answered last
        headers = {"accept": "application/json", "user-agent": "cumulo-sdk"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        # Nagle's algorithm would hold a request's body back until the server's
        # delayed ACK of its headers: about 40 ms per call on a kept-alive connection.
        transport = httpx.HTTPTransport(
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            limits=httpx.Limits(max_connections=32, keepalive_expiry=15.0),
        )
        self._client = httpx.Client(
            base_url=self.urls[0] + "/api/v1",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )

    @property
    def url(self) -> str:
        """The server this transport talks to now (the first of its servers that answers)."""
        return self.urls[self._current]

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"HttpTransport({self.url!r})"

    # ------------------------------------------------------------- plumbing
    def _send(
        self,
        request: httpx.Request,
        stream: bool = False,
        *,
        repeatable: bool | None = None,
        rebuild: Callable[[], httpx.Request] | None = None,
    ) -> httpx.Response:
        """Send to the current server, then to the others while they do not answer.

        ``repeatable`` says whether the call may be sent again after its answer
        was lost (by default: by its method and path); ``rebuild`` makes a fresh
        request when the body is a stream that was read.
        """
        if repeatable is None:
            repeatable = _repeatable(request)
        failures: list[str] = []
        response = None
        for attempt, index in enumerate(self._failover_order()):
            if attempt and rebuild is not None:
                request = rebuild()
            # Requests are built on the first server's address; others get them moved.
            target = request if index == 0 else self._rebase(request, index)
            try:
                answer = self._client.send(target, stream=stream)
            except (httpx.TransportError, httpx.StreamConsumed) as exc:
                failures.append(f"{self.urls[index]}: {type(exc).__name__}: {exc}")
                if not _may_resend(exc, repeatable, request, rebuild):
                    break
                continue
            if answer.status_code in _AWAY and repeatable and attempt < len(self.urls) - 1:
                failures.append(f"{self.urls[index]}: answered {answer.status_code}")
                _discard(answer, stream)
                continue
            self._current = index
            response = answer
            break
        if response is None:
            raise Unavailable(
                f"Cannot reach the Cumulo server at {' or '.join(self.urls)} "
                f"({'; '.join(failures)}); check that `cumulo server` is running there."
            )
        if response.status_code >= 400:
            _discard(response, stream)
            raise _error(response)
        return response

    def _failover_order(self) -> list[int]:
        n = len(self.urls)
        return [(self._current + k) % n for k in range(n)]

    def _rebase(self, request: httpx.Request, index: int) -> httpx.Request:
        """``request`` sent to another server: same path under that server's address."""
        built_on = str(request.url)
        base = str(self._client.base_url).rstrip("/")
        tail = built_on[len(base) :] if built_on.startswith(base) else request.url.raw_path.decode()
        url = httpx.URL(self.urls[index] + "/api/v1" + tail)
        headers = request.headers.copy()
        headers["host"] = url.netloc.decode("ascii")
        return httpx.Request(
            request.method,
            url,
            headers=headers,
            stream=request.stream,
            extensions=request.extensions,
        )

    def _call(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        try:
            content = None if body is None else orjson.dumps(body, option=_DUMPS)
        except orjson.JSONEncodeError as exc:
            raise InvalidInput(f"Cannot send this value to the server: {exc}") from exc
        clean = None if params is None else {k: v for k, v in params.items() if v is not None}
        request = self._client.build_request(
            method, path, content=content, params=clean, headers=_JSON if content else None
        )
        response = self._send(request)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise Unavailable(
                f"The server at {self.url} answered {path} with something that is not JSON; "
                "is it a Cumulo server?"
            ) from exc

    @staticmethod
    def _ws(workspace: str) -> str:
        return f"/workspaces/{_q(workspace)}"

    def _run(self, workspace: str, run_id: str) -> str:
        return f"{self._ws(workspace)}/runs/{_q(run_id)}"

    # ------------------------------------------------------------ workspaces
    def create_workspace(
        self, name: str, exist_ok: bool = False, description: str = ""
    ) -> WorkspaceInfo:
        body = {"name": name, "exist_ok": exist_ok, "description": description}
        return WorkspaceInfo.from_dict(self._call("POST", "/workspaces", body))

    def get_workspace(self, name: str) -> WorkspaceInfo:
        return WorkspaceInfo.from_dict(self._call("GET", self._ws(name)))

    def list_workspaces(self) -> list[WorkspaceInfo]:
        data = self._call("GET", "/workspaces")
        return [WorkspaceInfo.from_dict(w) for w in data["workspaces"]]

    # ----------------------------------------------------------- experiments
    def get_or_create_experiment(self, workspace: str, name: str) -> ExperimentInfo:
        body = {"name": name, "get_or_create": True}
        return ExperimentInfo.from_dict(
            self._call("POST", self._ws(workspace) + "/experiments", body)
        )

    def create_experiment(
        self, workspace: str, name: str, tags: dict[str, str] | None = None
    ) -> ExperimentInfo:
        body = {"name": name, "tags": tags}
        return ExperimentInfo.from_dict(
            self._call("POST", self._ws(workspace) + "/experiments", body)
        )

    def get_experiment(
        self, workspace: str, experiment_id: int | None = None, name: str | None = None
    ) -> ExperimentInfo:
        base = self._ws(workspace) + "/experiments"
        if experiment_id is not None:
            return ExperimentInfo.from_dict(self._call("GET", f"{base}/{int(experiment_id)}"))
        if name is None:
            raise InvalidInput("Give an experiment id or name.")
        return ExperimentInfo.from_dict(self._call("GET", base + "/by-name", params={"name": name}))

    def list_experiments(
        self, workspace: str, include_archived: bool = False, view: str = "active"
    ) -> list[ExperimentInfo]:
        params = {"include_archived": include_archived, "view": view}
        data = self._call("GET", self._ws(workspace) + "/experiments", params=params)
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
        path = f"{self._ws(workspace)}/experiments/{int(experiment_id)}"
        return ExperimentInfo.from_dict(self._call("PATCH", path, body))

    def set_experiment_tag(
        self, workspace: str, experiment_id: int, key: str, value: str | None
    ) -> None:
        path = f"{self._ws(workspace)}/experiments/{int(experiment_id)}/tags"
        self._call("POST", path, {"key": key, "value": value})

    def delete_experiment(self, workspace: str, experiment_id: int) -> list[str]:
        path = f"{self._ws(workspace)}/experiments/{int(experiment_id)}"
        return list(self._call("DELETE", path)["run_ids"])

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
        return RunInfo.from_dict(self._call("POST", self._ws(workspace) + "/runs", body))

    def get_run(self, workspace: str, run_id: str) -> RunInfo:
        return RunInfo.from_dict(self._call("GET", self._run(workspace, run_id)))

    def find_run(self, workspace: str, id_or_start: str) -> RunInfo:
        data = self._call("GET", self._ws(workspace) + "/runs/find", params={"id": id_or_start})
        return RunInfo.from_dict(data)

    def run_keys(self, workspace: str, experiment_id: int) -> dict[str, list[str]]:
        data = self._call("GET", f"{self._ws(workspace)}/experiments/{int(experiment_id)}/keys")
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
        return RunPage.from_dict(self._call("POST", self._ws(workspace) + "/runs/search", body))

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
        return RunInfo.from_dict(self._call("POST", path, body))

    def update_run(
        self,
        workspace: str,
        run_id: str,
        display_name: str | None = None,
        deleted: bool | None = None,
    ) -> RunInfo:
        body = {"display_name": display_name, "deleted": deleted}
        return RunInfo.from_dict(self._call("PATCH", self._run(workspace, run_id), body))

    def delete_run(self, workspace: str, run_id: str) -> list[str]:
        return list(self._call("DELETE", self._run(workspace, run_id))["run_ids"])

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
            self._call("POST", self._run(workspace, run_id) + "/log-batch", body)["written"]
        )

    def set_tags(self, workspace: str, run_id: str, tags: dict[str, Any]) -> None:
        body = {"tags": {k: _jsonable(v) for k, v in tags.items()}}
        self._call("POST", self._run(workspace, run_id) + "/tags", body)

    def delete_tags(self, workspace: str, run_id: str, keys: list[str]) -> None:
        self._call("POST", self._run(workspace, run_id) + "/tags/delete", {"keys": list(keys)})

    def add_properties(self, workspace: str, run_id: str, properties: dict[str, Any]) -> None:
        body = {"properties": {k: _jsonable(v) for k, v in properties.items()}}
        self._call("POST", self._run(workspace, run_id) + "/properties", body)

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
        return _decode_series(self._call("GET", path, params=params))

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
        chart = self._call("GET", self._run(workspace, run_id) + "/metrics/chart", params=params)
        chart["y"] = [decode_float(v) if isinstance(v, str) else v for v in chart["y"]]
        return cast(dict[str, Any], chart)

    def get_run_records(self, workspace: str, run_id: str) -> list[MetricRecord]:
        data = self._call("GET", self._run(workspace, run_id) + "/records")
        return [MetricRecord.from_dict(r) for r in data["records"]]

    def get_run_metrics(self, workspace: str, run_id: str) -> dict[str, Any]:
        data = self._call("GET", self._run(workspace, run_id) + "/metrics")
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
        start = _position(stream)

        def build() -> httpx.Request:
            if start is not None:
                stream.seek(start)  # another server gets the whole file again
            return self._client.build_request(
                "PUT",
                url,
                content=read_chunks(stream),
                headers={"content-type": "application/octet-stream"},
            )

        response = self._send(build(), rebuild=build if start is not None else None)
        return int(orjson.loads(response.content)["size"])

    def list_artifacts(
        self, workspace: str, run_id: str, path: str = "", recursive: bool = False
    ) -> list[FileInfo]:
        params = {"path": path, "recursive": recursive}
        data = self._call("GET", self._run(workspace, run_id) + "/artifacts", params=params)
        return [FileInfo.from_dict(f) for f in data["files"]]

    def open_artifact(self, workspace: str, run_id: str, path: str) -> IO[bytes]:
        """A file-like object reading the artifact as it streams from the server."""
        request = self._client.build_request("GET", self._artifact(workspace, run_id, path))
        response = self._send(request, stream=True)
        return cast(IO[bytes], io.BufferedReader(_ResponseReader(response), CHUNK))

    def delete_artifact(self, workspace: str, run_id: str, path: str) -> None:
        self._call("DELETE", self._artifact(workspace, run_id, path))

    def artifact_size(self, workspace: str, run_id: str, path: str) -> int:
        request = self._client.build_request("GET", self._artifact(workspace, run_id, path))
        response = self._send(request, stream=True)
        response.close()
        return int(response.headers["content-length"])

    # ---------------------------------------------------------------- models
    def _model(self, workspace: str, name: str) -> str:
        return f"{self._ws(workspace)}/models/{_q(name)}"

    def register_version(
        self,
        workspace: str,
        name: str,
        *,
        local_dir: str | None = None,
        run_id: str | None = None,
        path: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        user: str = "",
    ) -> ModelVersionInfo:
        """The next version of ``name``: a run's files, or a local folder sent as one archive."""
        if run_id is not None:
            body = {
                "run_id": run_id,
                "path": path or "",
                "description": description,
                "tags": tags,
                "user": user,
            }
            data = self._call("POST", self._model(workspace, name) + "/versions", body)
            return ModelVersionInfo.from_dict(data)
        if local_dir is None:
            raise InvalidInput("Register from a local folder or from a run's files.")
        params = {
            "description": description,
            "tags": orjson.dumps(tags or {}).decode(),
            "user": user,
        }
        with tempfile.TemporaryFile() as archive:
            with tarfile.open(fileobj=archive, mode="w:gz") as tar:
                source = Path(local_dir)
                tar.add(source, arcname=source.name if source.is_file() else ".")
            size = archive.tell()
            archive.seek(0)
            with transfer(f"Uploading model {name}", size) as done:
                request = self._client.build_request(
                    "PUT",
                    self._model(workspace, name) + "/artifacts/model.tar.gz",
                    content=read_chunks(cast(IO[bytes], CountingReader(archive, done))),
                    params=params,
                    headers={"content-type": "application/gzip"},
                )
                response = self._send(request)
        return ModelVersionInfo.from_dict(orjson.loads(response.content))

    def get_version(
        self, workspace: str, name: str, version: int | None = None, alias: str | None = None
    ) -> ModelVersionInfo:
        params = {"version": version, "alias": alias}
        data = self._call("GET", self._model(workspace, name) + "/version", params=params)
        return ModelVersionInfo.from_dict(data)

    def list_versions(
        self,
        workspace: str,
        name: str | None = None,
        tags: dict[str, str] | None = None,
        run_id: str | None = None,
        latest: bool = False,
    ) -> list[ModelVersionInfo]:
        params = {
            "name": name,
            "tags": orjson.dumps(tags or {}).decode(),
            "run_id": run_id,
            "latest": latest,
        }
        data = self._call("GET", self._ws(workspace) + "/model-versions", params=params)
        return [ModelVersionInfo.from_dict(v) for v in data["versions"]]

    def set_alias(self, workspace: str, name: str, alias: str, version: int) -> None:
        path = f"{self._model(workspace, name)}/aliases/{_q(alias)}"
        self._call("PUT", path, {"version": version})

    def delete_alias(self, workspace: str, name: str, alias: str) -> None:
        self._call("DELETE", f"{self._model(workspace, name)}/aliases/{_q(alias)}")

    def set_version_tags(
        self, workspace: str, name: str, version: int, tags: dict[str, Any]
    ) -> ModelVersionInfo:
        path = f"{self._model(workspace, name)}/versions/{int(version)}/tags"
        return ModelVersionInfo.from_dict(self._call("POST", path, {"tags": tags}))

    def delete_version_tags(
        self, workspace: str, name: str, version: int, keys: list[str]
    ) -> ModelVersionInfo:
        path = f"{self._model(workspace, name)}/versions/{int(version)}/tags/delete"
        return ModelVersionInfo.from_dict(self._call("POST", path, {"keys": keys}))

    def delete_version(self, workspace: str, name: str, version: int) -> None:
        self._call("DELETE", f"{self._model(workspace, name)}/versions/{int(version)}")

    def list_version_files(self, workspace: str, name: str, version: int) -> list[FileInfo]:
        path = f"{self._model(workspace, name)}/versions/{int(version)}/files"
        return [FileInfo.from_dict(f) for f in self._call("GET", path)["files"]]

    def open_version_file(self, workspace: str, name: str, version: int, path: str) -> IO[bytes]:
        rel = quote(validation.artifact_path(path), safe="/")
        url = f"{self._model(workspace, name)}/versions/{int(version)}/files/{rel}"
        response = self._send(self._client.build_request("GET", url), stream=True)
        return cast(IO[bytes], io.BufferedReader(_ResponseReader(response), CHUNK))

    # ------------------------------------------------------------- endpoints
    def _endpoint(self, workspace: str, name: str) -> str:
        return f"{self._ws(workspace)}/endpoints/{_q(name)}"

    def serving_url(self) -> str:
        """Endpoints are served by the server itself."""
        return self.url

    def create_endpoint(
        self,
        workspace: str,
        name: str,
        auth: str = "key",
        description: str = "",
        tags: dict[str, Any] | None = None,
    ) -> EndpointInfo:
        body = {"name": name, "auth": auth, "description": description, "tags": tags}
        return EndpointInfo.from_dict(self._call("POST", self._ws(workspace) + "/endpoints", body))

    def get_endpoint(self, workspace: str, name: str) -> EndpointInfo:
        return EndpointInfo.from_dict(self._call("GET", self._endpoint(workspace, name)))

    def list_endpoints(self, workspace: str) -> list[EndpointInfo]:
        data = self._call("GET", self._ws(workspace) + "/endpoints")
        return [EndpointInfo.from_dict(e) for e in data["endpoints"]]

    def update_endpoint(
        self,
        workspace: str,
        name: str,
        traffic: dict[str, Any] | None = None,
        mirror_traffic: dict[str, Any] | None = None,
        auth: str | None = None,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
    ) -> EndpointInfo:
        body = {
            "traffic": traffic,
            "mirror_traffic": mirror_traffic,
            "auth": auth,
            "description": description,
            "tags": tags,
        }
        return EndpointInfo.from_dict(self._call("PATCH", self._endpoint(workspace, name), body))

    def delete_endpoint(self, workspace: str, name: str) -> None:
        self._call("DELETE", self._endpoint(workspace, name))

    def get_keys(self, workspace: str, name: str) -> dict[str, str]:
        return cast(dict[str, str], self._call("GET", self._endpoint(workspace, name) + "/keys"))

    def regenerate_key(self, workspace: str, name: str, which: str = "primary") -> dict[str, str]:
        path = self._endpoint(workspace, name) + "/keys/regenerate"
        return cast(dict[str, str], self._call("POST", path, {"which": which}))

    def upload_code(self, workspace: str, endpoint: str, stream: IO[bytes]) -> str:
        request = self._client.build_request(
            "PUT",
            self._endpoint(workspace, endpoint) + "/artifacts/code.zip",
            content=read_chunks(stream),
            headers={"content-type": "application/zip"},
        )
        return str(orjson.loads(self._send(request).content)["code"])

    def create_deployment(
        self,
        workspace: str,
        endpoint: str,
        name: str,
        models: list[dict[str, Any]],
        config: dict[str, Any] | None = None,
    ) -> DeploymentInfo:
        body = {"name": name, "models": models, "config": config}
        path = self._endpoint(workspace, endpoint) + "/deployments"
        return DeploymentInfo.from_dict(self._call("POST", path, body))

    def update_deployment(
        self,
        workspace: str,
        endpoint: str,
        name: str,
        models: list[dict[str, Any]] | None = None,
        config: dict[str, Any] | None = None,
    ) -> DeploymentInfo:
        path = f"{self._endpoint(workspace, endpoint)}/deployments/{_q(name)}"
        return DeploymentInfo.from_dict(
            self._call("PATCH", path, {"models": models, "config": config})
        )

    def delete_deployment(self, workspace: str, endpoint: str, name: str) -> None:
        self._call("DELETE", f"{self._endpoint(workspace, endpoint)}/deployments/{_q(name)}")

    def get_logs(
        self, workspace: str, endpoint: str, deployment: str | None = None, tail: int = 200
    ) -> str:
        params = {"deployment": deployment, "tail": tail}
        data = self._call("GET", self._endpoint(workspace, endpoint) + "/logs", params=params)
        return str(data["logs"])

    def get_metrics(
        self, workspace: str, endpoint: str, deployment: str | None = None, minutes: int = 60
    ) -> list[dict[str, Any]]:
        params = {"deployment": deployment, "minutes": minutes}
        data = self._call("GET", self._endpoint(workspace, endpoint) + "/metrics", params=params)
        return list(data["metrics"])

    def get_request_logs(
        self, workspace: str, endpoint: str, deployment: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params = {"deployment": deployment, "limit": limit}
        data = self._call("GET", self._endpoint(workspace, endpoint) + "/requests", params=params)
        return list(data["requests"])


# ----------------------------------------------------------------- helpers
def service_urls(url: str | Sequence[str]) -> list[str]:
    """The servers a transport may use: ``url`` (one, a comma-separated list, or a list),
    then, when ``url`` is one of a job's ``CUMULO_URLS``, the others of that list."""
    parts = url.split(",") if isinstance(url, str) else list(url)
    urls = [p.strip().rstrip("/") for p in parts if p.strip()]
    if not urls:
        raise InvalidInput("Give the address of a Cumulo server.")
    fellows = [u.strip().rstrip("/") for u in os.environ.get("CUMULO_URLS", "").split(",")]
    if urls[0] in fellows:
        urls += [u for u in fellows if u]
    return list(dict.fromkeys(urls))


def _repeatable(request: httpx.Request) -> bool:
    if request.method in _REPEATABLE_METHODS:
        return True
    path = request.url.path
    if request.method == "POST" and path.endswith("/log-batch"):
        # Stored once per batch id: a batch sent twice is written once.
        return b'"batch_id":"' in (request.content if _has_bytes(request) else b"")
    return request.method == "POST" and path.endswith(_REPEATABLE_POSTS)


def _has_bytes(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


def _may_resend(
    exc: Exception,
    repeatable: bool,
    request: httpx.Request,
    rebuild: Callable[[], httpx.Request] | None,
) -> bool:
    """Whether another server may get this request after ``exc``."""
    # Never connected: the server cannot have seen the request, nor read its body.
    never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
    body_again = _has_bytes(request) or rebuild is not None or never_sent
    return body_again and (repeatable or never_sent)


def _discard(response: httpx.Response, stream: bool) -> None:
    """Read and close a response that will not be returned (a streamed one holds a connection)."""
    if not stream:
        return
    try:
        response.read()
    except httpx.TransportError:
        pass
    finally:
        response.close()


def _error(response: httpx.Response) -> CumuloError:
    """The error the server raised, rebuilt from its JSON body."""
    try:
        body = orjson.loads(response.content)
        code, message = str(body["error_code"]), str(body["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass
    else:
        if code == "ENDPOINT_NOT_FOUND":  # e.g. an id with a "/" in it: no such thing
            return NotFound(message)
        details = body.get("details")
        return from_code(code, message, details if isinstance(details, dict) else None)
    status = response.status_code
    text = response.text[:300]
    if status in (502, 503, 504):
        return Unavailable(f"The server answered {status}; try again later. {text}")
    if status == 401:
        return Unauthenticated(f"The server needs a token (401). {text}")
    if status == 403:
        return PermissionDenied(f"The server refused access (403). {text}")
    if status == 404:
        return NotFound(f"Not found on the server (404): {response.request.url.path}")
    return CumuloError(f"The server answered {status}: {text}")


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


def read_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


class _ResponseReader(io.RawIOBase):
    """A streamed response body as a raw file; closing it closes the response."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._chunks = response.iter_bytes(CHUNK)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
            except httpx.TransportError as exc:
                raise Unavailable(f"The download was cut off: {exc}") from exc
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


def _position(stream: IO[bytes]) -> int | None:
    """Where a stream that can be read again from there stands (None: it cannot).

    Plain readers (a progress counter, a socket) have no ``seekable``: their upload
    is not resent to another server.
    """
    seekable = getattr(stream, "seekable", None)
    return stream.tell() if seekable is not None and seekable() else None
