"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts/...``) and server info.

Paths are ``<workspace>/runs/<run_id>/<file>``, ``<workspace>/logged-models/<id>/<file>``
or ``<workspace>/models/<name>/<version>/<file>`` (read-only): the same prefixes the
SDK and the registry use, checked against the workspace the request addresses.
Files are streamed both ways in chunks, never held whole in memory.
"""

from __future__ import annotations

import io
import posixpath
from typing import IO

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from cumulo.core import validation
from cumulo.core.entities import FileInfo
from cumulo.core.errors import InvalidInput, NotFound, PermissionDenied
from cumulo.server.mlflow import convert
from cumulo.server.mlflow.common import (
    Message,
    MlflowRoute,
    Msg,
    Readable,
    Registry,
    Tracking,
    Writable,
)
from cumulo.server.responses import JsonResponse
from cumulo.server.streams import attachment, body_reader, file_chunks
from cumulo.services.registry import RegistryService
from cumulo.services.tracking import TrackingService, run_prefix

A = "/api/2.0/mlflow-artifacts/artifacts"

router = APIRouter(route_class=MlflowRoute, include_in_schema=False)


class _Location:
    """Where a proxy path points: an area (runs, logged-models, models), an owner, a file."""

    def __init__(self, workspace: str, path: str) -> None:
        # Only a trailing '/' is dropped: a leading one makes the path absolute, and
        # stripping it would write somewhere the client did not name.
        clean = validation.artifact_path(path.rstrip("/"), allow_root=True)
        parts = clean.split("/") if clean else []
        if not parts or parts[0] != workspace:
            raise NotFound(
                f"Artifact path {path!r} is not in workspace {workspace!r}; use the tracking "
                f"URI of the workspace it belongs to (.../ws/<name>)."
            )
        self.area = parts[1] if len(parts) > 1 else ""
        if self.area not in ("runs", "logged-models", "models"):
            raise NotFound(f"There are no artifacts at {path!r}.")
        width = 4 if self.area == "models" else 3  # models: <name>/<version>
        if len(parts) < width:
            raise NotFound(f"There are no artifacts at {path!r}.")
        self.workspace = workspace
        self.owner = parts[2]
        self.prefix = "/".join(parts[:width])
        self.rel = "/".join(parts[width:])


def _list(tracking: TrackingService, registry: RegistryService, loc: _Location) -> list[FileInfo]:
    if loc.area == "runs":
        return tracking.list_artifacts(loc.workspace, loc.owner, loc.rel)
    if loc.area == "logged-models":
        return registry.list_logged_model_files(loc.workspace, loc.owner, loc.rel)
    version = registry.version_by_prefix(loc.workspace, loc.prefix)
    return registry.list_version_files(loc.workspace, version.name, version.version, loc.rel)


def _open(tracking: TrackingService, registry: RegistryService, loc: _Location) -> IO[bytes]:
    if not loc.rel:
        raise InvalidInput("Name a file to download, not a folder.")
    if loc.area == "runs":
        return tracking.open_artifact(loc.workspace, loc.owner, loc.rel)
    if loc.area == "logged-models":
        return registry.open_logged_model_file(loc.workspace, loc.owner, loc.rel)
    version = registry.version_by_prefix(loc.workspace, loc.prefix)
    return registry.open_version_file(loc.workspace, version.name, version.version, loc.rel)


@router.get(A)
def list_artifacts(
    workspace: Readable, msg: Msg, tracking: Tracking, registry: Registry
) -> JsonResponse:
    path = msg.text("path") or ""
    try:
        loc = _Location(workspace, path)
    except NotFound:
        return JsonResponse({})  # above any run or model: nothing to list
    files = _list(tracking, registry, loc)
    return JsonResponse(
        {"files": [convert.file_info(f, posixpath.basename(f.path)) for f in files]}
    )


@router.get(A + "/{path:path}")
def download(
    path: str, workspace: Readable, tracking: Tracking, registry: Registry
) -> StreamingResponse:
    handle = _open(tracking, registry, _Location(workspace, path))
    return StreamingResponse(file_chunks(handle), media_type="application/octet-stream")


@router.put(A + "/{path:path}")
async def upload(
    request: Request, path: str, workspace: Writable, tracking: Tracking, registry: Registry
) -> JsonResponse:
    loc = _Location(workspace, path)
    reader = body_reader(request.stream())
    try:
        if loc.area == "runs":
            await run_in_threadpool(
                tracking.upload_artifact, loc.workspace, loc.owner, loc.rel, reader
            )
        elif loc.area == "logged-models":
            await run_in_threadpool(
                registry.upload_logged_model_file, loc.workspace, loc.owner, loc.rel, reader
            )
        else:
            raise PermissionDenied("Registered model versions are read-only.")
    except ClientDisconnect:
        raise InvalidInput(f"The upload of {path!r} was interrupted; send it again.") from None
    return JsonResponse({})


@router.delete(A + "/{path:path}")
def delete(path: str, workspace: Writable, tracking: Tracking, registry: Registry) -> JsonResponse:
    loc = _Location(workspace, path)
    if not loc.rel:
        raise InvalidInput("Name a file or folder inside the run or model to delete.")
    if loc.area == "runs":
        tracking.delete_artifact(loc.workspace, loc.owner, loc.rel)
    elif loc.area == "logged-models":
        registry.delete_logged_model_file(loc.workspace, loc.owner, loc.rel)
    else:
        raise PermissionDenied("Registered model versions are read-only.")
    return JsonResponse({})


# ------------------------------------------------- MLflow's older file routes
def _safe_path(path: str | None) -> str:
    """A relative path inside a run or version, refused in MLflow's words otherwise."""
    try:
        return validation.artifact_path(path or "", allow_root=True)
    except InvalidInput:
        raise InvalidInput("Invalid path") from None


def _run_of(msg: Message) -> str:
    run_id = msg.text("run_id") or msg.text("run_uuid")
    if not run_id:
        raise InvalidInput("Missing value for required parameter 'run_id'.")
    return run_id


@router.get("/api/2.0/mlflow/artifacts/list")
def list_run_artifacts(workspace: Readable, msg: Msg, tracking: Tracking) -> JsonResponse:
    """A run's files, paths from the run's root (clients before the artifact proxy)."""
    run_id, rel = _run_of(msg), _safe_path(msg.text("path"))
    files = tracking.list_artifacts(workspace, run_id, rel)
    return JsonResponse(
        {
            "root_uri": f"mlflow-artifacts:/{run_prefix(workspace, run_id)}",
            "files": [convert.file_info(f, f.path) for f in files],
        }
    )


@router.get("/get-artifact")
def get_run_artifact(workspace: Readable, msg: Msg, tracking: Tracking) -> StreamingResponse:
    run_id, rel = _run_of(msg), _safe_path(msg.text("path"))
    return attachment(tracking.open_artifact(workspace, run_id, rel), rel)


@router.get("/model-versions/get-artifact")
def get_version_artifact(workspace: Readable, msg: Msg, registry: Registry) -> StreamingResponse:
    rel = _safe_path(msg.text("path"))
    handle = registry.open_version_file(workspace, msg.need("name"), msg.need("version"), rel)
    return attachment(handle, rel)


@router.post("/ajax-api/2.0/mlflow/upload-artifact")
async def upload_run_artifact(
    request: Request, workspace: Writable, tracking: Tracking
) -> JsonResponse:
    """MLflow's web UI uploads one file to a run (``?run_uuid=...&path=...``, the body)."""
    run_id = request.query_params.get("run_uuid")
    if not run_id:
        raise InvalidInput("Request must specify run_uuid.")
    path = request.query_params.get("path")
    if not path:
        raise InvalidInput("Request must specify path.")
    rel = _safe_path(path)
    data = await request.body()
    if not data:
        raise InvalidInput("Request must specify data.")
    await run_in_threadpool(tracking.upload_artifact, workspace, run_id, rel, io.BytesIO(data))
    return JsonResponse({})


@router.get("/api/3.0/mlflow/server-info")
def server_info(workspace: Readable) -> JsonResponse:
    # Multipart and presigned transfers are off: clients send and fetch through the proxy.
    return JsonResponse(
        {
            "store_type": "SqlStore",
            "artifact_serving_enabled": True,
            "workspaces_enabled": False,
            "multipart_uploads_enabled": False,
            "multipart_downloads_enabled": False,
            "presigned_upload_run_id_supported": False,
            "presigned_upload_model_id_supported": False,
            "model_artifact_presigned_downloads_supported": False,
            "artifacts_presigned_only": False,
            "trace_archival_enabled": False,
        }
    )
