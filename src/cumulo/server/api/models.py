"""``/api/v1/workspaces/{workspace}/models``: register, find, alias, tag, download, delete.

A folder registered from a client arrives as one gzipped tar archive, streamed
to a temporary file (``PUT .../models/{name}/artifacts/{archive}``, exempt from
the request size limit like other uploads) and unpacked there before the
registry copies it; nothing is held whole in memory. The archive is counted as
it arrives and refused as soon as it passes ``MAX_MODEL_UPLOAD_BYTES``; what it
unpacks to is checked against the same limit before anything is unpacked.
"""

from __future__ import annotations

import errno
import json
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path as FsPath
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cumulo.core.errors import InvalidInput, PayloadTooLarge
from cumulo.server.api.common import WS, Readable, Writable
from cumulo.server.limits import receive_upload
from cumulo.server.responses import JsonResponse
from cumulo.services.registry import RegistryService, model_name
from cumulo.store.artifacts import storage_error

router = APIRouter(prefix=WS, tags=["models"])

ModelName = Annotated[str, Path(max_length=256)]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]
Text = Annotated[str, Field(max_length=100_000)]
CHUNK = 1024 * 1024
MAX_ARCHIVE_FILES = 10_000
MAX_MODEL_UPLOAD_BYTES = 64 * 2**30  # packed, and again unpacked


async def _registry(request: Request) -> RegistryService:
    service: RegistryService = request.app.state.services.registry
    return service


Api = Annotated[RegistryService, Depends(_registry)]


class VersionFromRun(BaseModel):
    run_id: str = Field(max_length=64)
    path: str = Field(default="", max_length=4096)
    description: str = Field(default="", max_length=100_000)
    tags: dict[str, Text] | None = None
    user: str = Field(default="", max_length=250)


class AliasSet(BaseModel):
    version: int = Field(ge=1, le=2**31 - 1)


class TagsSet(BaseModel):
    tags: dict[str, Text]


class TagsDelete(BaseModel):
    keys: list[Annotated[str, Field(max_length=1000)]]


@router.post("/models/{name}/versions", status_code=201)
def register_from_run(
    body: VersionFromRun, workspace: Writable, name: ModelName, api: Api
) -> JsonResponse:
    """The next version of ``name`` from a file or folder of a run's outputs."""
    info = api.register_version(
        workspace,
        name,
        run_id=body.run_id,
        path=body.path,
        description=body.description,
        tags=body.tags,
        user=body.user,
    )
    return JsonResponse(info.to_dict(), status_code=201)


@router.put("/models/{name}/artifacts/{archive}", status_code=201)
async def register_upload(
    request: Request,
    workspace: Writable,
    name: ModelName,
    api: Api,
    archive: Annotated[str, Path(max_length=200)],
    description: Annotated[str, Query(max_length=100_000)] = "",
    tags: Annotated[str, Query(max_length=100_000)] = "{}",
    user: Annotated[str, Query(max_length=250)] = "",
) -> JsonResponse:
    """The next version of ``name`` from a ``.tar.gz`` of a local folder (the request body)."""
    try:
        parsed = json.loads(tags)
    except ValueError:
        raise InvalidInput("tags must be a JSON object of strings.") from None
    if not isinstance(parsed, dict):
        raise InvalidInput("tags must be a JSON object of strings.")
    model_name(name)  # a bad name is refused before the upload is read
    with tempfile.TemporaryDirectory(prefix="cumulo-model-") as tmp:
        file = FsPath(tmp) / "upload.tar.gz"
        with open(file, "wb") as out:
            await receive_upload(request, out, MAX_MODEL_UPLOAD_BYTES, "the model archive")
        folder = FsPath(tmp) / "files"
        await run_in_threadpool(_unpack, file, folder)
        info = await run_in_threadpool(
            lambda: api.register_version(
                workspace,
                name,
                local_dir=str(folder),
                description=description,
                tags={str(k): str(v) for k, v in parsed.items()},
                user=user,
            )
        )
    return JsonResponse(info.to_dict(), status_code=201)


def _unpack(file: FsPath, folder: FsPath) -> None:
    folder.mkdir()
    try:
        with tarfile.open(file, "r:gz") as tar:
            members = tar.getmembers()
            if len(members) > MAX_ARCHIVE_FILES:
                raise InvalidInput(f"A model holds at most {MAX_ARCHIVE_FILES} files.")
            if sum(m.size for m in members) > MAX_MODEL_UPLOAD_BYTES:
                raise PayloadTooLarge(
                    f"The model unpacks to more than {MAX_MODEL_UPLOAD_BYTES // 2**30} GiB."
                )
            tar.extractall(folder, filter="data")  # refuses links and paths that escape
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):  # the server's disk, not the file
            raise storage_error(exc, "unpack the model") from exc
        raise InvalidInput(f"The uploaded model is not a readable .tar.gz archive: {exc}") from None
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidInput(f"The uploaded model is not a readable .tar.gz archive: {exc}") from None


@router.get("/models/{name}/version")
def get_version(
    workspace: Readable,
    name: ModelName,
    api: Api,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    alias: Annotated[str | None, Query(max_length=255)] = None,
) -> JsonResponse:
    """A version by number, by alias, or the latest."""
    return JsonResponse(api.resolve_version(workspace, name, version, alias).to_dict())


@router.get("/model-versions")
def list_versions(
    workspace: Readable,
    api: Api,
    name: Annotated[str | None, Query(max_length=256)] = None,
    tags: Annotated[str, Query(max_length=100_000)] = "{}",
    run_id: Annotated[str | None, Query(max_length=64)] = None,
    latest: bool = False,
) -> JsonResponse:
    try:
        parsed: Any = json.loads(tags)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidInput("tags must be a JSON object of strings.")
    found = api.list_versions(workspace, name, parsed, run_id, latest)
    return JsonResponse({"versions": [v.to_dict() for v in found]})


@router.put("/models/{name}/aliases/{alias}")
def set_alias(
    body: AliasSet,
    workspace: Writable,
    name: ModelName,
    alias: Annotated[str, Path(max_length=255)],
    api: Api,
) -> JsonResponse:
    api.set_alias(workspace, name, alias, body.version)
    return JsonResponse({})


@router.delete("/models/{name}/aliases/{alias}")
def delete_alias(
    workspace: Writable, name: ModelName, alias: Annotated[str, Path(max_length=255)], api: Api
) -> JsonResponse:
    api.delete_alias(workspace, name, alias)
    return JsonResponse({})


@router.post("/models/{name}/versions/{version}/tags")
def set_tags(
    body: TagsSet, workspace: Writable, name: ModelName, version: Version, api: Api
) -> JsonResponse:
    return JsonResponse(api.set_version_tags(workspace, name, version, body.tags).to_dict())


@router.post("/models/{name}/versions/{version}/tags/delete")
def delete_tags(
    body: TagsDelete, workspace: Writable, name: ModelName, version: Version, api: Api
) -> JsonResponse:
    return JsonResponse(api.delete_version_tags(workspace, name, version, body.keys).to_dict())


@router.delete("/models/{name}/versions/{version}")
def delete_version(
    workspace: Writable, name: ModelName, version: Version, api: Api
) -> JsonResponse:
    api.unregister_version(workspace, name, version)
    return JsonResponse({})


@router.get("/models/{name}/versions/{version}/files")
def list_files(
    workspace: Readable,
    name: ModelName,
    version: Version,
    api: Api,
    path: Annotated[str, Query(max_length=4096)] = "",
    recursive: bool = True,
) -> JsonResponse:
    """The version's files under ``path`` (the whole tree unless ``recursive=false``)."""
    found = api.list_version_files(workspace, name, version, path, recursive)
    return JsonResponse({"files": [f.to_dict() for f in found]})


@router.get("/models/{name}/versions/{version}/files/{path:path}")
def download_file(
    workspace: Readable,
    name: ModelName,
    version: Version,
    path: Annotated[str, Path(max_length=4096)],
    api: Api,
) -> StreamingResponse:
    handle = api.open_version_file(workspace, name, version, path)
    return StreamingResponse(_chunks(handle), media_type="application/octet-stream")


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk
