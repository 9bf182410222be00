"""``/api/v1/workspaces/{workspace}/runs/{run_id}/artifacts``: a run's files, streamed.

Uploads go to the artifact store chunk by chunk as they arrive and downloads
leave it the same way, so a file of any size never sits whole in memory (and
the request size limit does not apply to uploads).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from cumulo.core.errors import InvalidInput
from cumulo.server.api.common import WS, Readable, Tracking, Writable
from cumulo.server.responses import JsonResponse
from cumulo.server.streams import body_reader, file_chunks

router = APIRouter(prefix=WS + "/runs/{run_id}/artifacts", tags=["artifacts"])

RunId = Annotated[str, Path(max_length=64)]
ArtifactPath = Annotated[str, Path(max_length=4096)]

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.get("")
def list_artifacts(
    workspace: Readable,
    run_id: RunId,
    service: Tracking,
    path: Annotated[str, Query(max_length=4096)] = "",
    recursive: bool = False,
) -> JsonResponse:
    """Files and folders under ``path`` (every file below it with ``recursive``)."""
    found = service.list_artifacts(workspace, run_id, path, recursive=recursive)
    return JsonResponse({"files": [f.to_dict() for f in found]})


@router.put("/{path:path}", status_code=201, openapi_extra=_UPLOAD_BODY)
async def upload_artifact(
    request: Request, workspace: Writable, run_id: RunId, path: ArtifactPath, service: Tracking
) -> JsonResponse:
    """Store the request body as the file ``path`` of the run (replacing any earlier one)."""
    reader = body_reader(request.stream())
    try:
        size = await run_in_threadpool(service.upload_artifact, workspace, run_id, path, reader)
    except ClientDisconnect:
        raise InvalidInput(f"The upload of {path!r} was interrupted; send it again.") from None
    return JsonResponse({"path": path, "size": size}, status_code=201)


@router.get("/{path:path}")
def download_artifact(
    workspace: Readable, run_id: RunId, path: ArtifactPath, service: Tracking
) -> StreamingResponse:
    size = service.artifact_size(workspace, run_id, path)
    handle = service.open_artifact(workspace, run_id, path)
    return StreamingResponse(
        file_chunks(handle),
        media_type="application/octet-stream",
        headers={"content-length": str(size)},
    )


@router.delete("/{path:path}")
def delete_artifact(
    workspace: Writable, run_id: RunId, path: ArtifactPath, service: Tracking
) -> JsonResponse:
    service.delete_artifact(workspace, run_id, path)
    return JsonResponse({})
