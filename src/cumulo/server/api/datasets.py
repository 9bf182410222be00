"""``/api/v1/workspaces/{workspace}/datastores``, ``/datasets`` and ``/lineage``.

File bodies stream both ways (``PUT .../dataset-blobs/{sha256}`` and
``PUT .../datastores/{name}/files/{path}`` are exempt from the request size
limit like artifact uploads). Registering a local folder as a datastore opens a
folder of the server's machine to the workspace, so it takes a workspace owner.
Credentials are sent once, sealed by the service, and never answered.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from cumulo.core.datasets import LATEST, LOCAL
from cumulo.core.errors import InvalidInput, PermissionDenied
from cumulo.server.api.common import WS, Managed, Readable, Writable, check
from cumulo.server.auth import token_auth
from cumulo.server.responses import JsonResponse
from cumulo.server.streams import body_reader, file_chunks
from cumulo.services.datasets import DatasetService

router = APIRouter(prefix=WS, tags=["datasets"])

Name = Annotated[str, Path(max_length=250)]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]
FilePath = Annotated[str, Path(max_length=4096)]
Text = Annotated[str, Field(max_length=100_000)]


async def _datasets(request: Request) -> DatasetService:
    service: DatasetService = request.app.state.services.datasets
    return service


Api = Annotated[DatasetService, Depends(_datasets)]


class DatastoreCreate(BaseModel):
    name: str = Field(max_length=250)
    kind: str = Field(max_length=16)
    config: dict[str, Any]
    credentials: dict[str, Annotated[str, Field(max_length=10_000)]] | None = None


class DefaultSet(BaseModel):
    name: str = Field(max_length=250)


class DatasetFileRef(BaseModel):
    path: str = Field(max_length=4096)
    size: int = Field(ge=0)
    sha256: str = Field(max_length=64)


class VersionCreate(BaseModel):
    kind: str = Field(max_length=16)
    files: list[DatasetFileRef] | None = Field(default=None, max_length=100_000)
    datastore: str | None = Field(default=None, max_length=250)
    pattern: str | None = Field(default=None, max_length=4096)
    format: dict[str, Any] | None = None
    description: str = Field(default="", max_length=100_000)
    tags: dict[str, Text] | None = None
    create_new_version: bool = True
    source: str = Field(default="", max_length=4096)
    user: str = Field(default="", max_length=250)


# ---------------------------------------------------------------- datastores
@router.post("/datastores", status_code=201)
async def register_datastore(
    request: Request, body: DatastoreCreate, workspace: Writable, api: Api
) -> JsonResponse:
    """An S3 datastore (any contributor) or a folder of the server's machine (owners only)."""
    if body.kind == LOCAL and token_auth(request):
        try:
            await check(request, workspace, write=True, manage=True)
        except PermissionDenied:
            raise PermissionDenied(
                "Only a workspace owner may register a folder of the server's machine."
            ) from None
    info = await run_in_threadpool(
        api.register_datastore, workspace, body.name, body.kind, body.config, body.credentials
    )
    return JsonResponse(info.to_dict(), status_code=201)


@router.get("/datastores")
def list_datastores(workspace: Readable, api: Api) -> JsonResponse:
    return JsonResponse({"datastores": [d.to_dict() for d in api.list_datastores(workspace)]})


@router.get("/datastores/{name}")
def get_datastore(workspace: Readable, name: Name, api: Api) -> JsonResponse:
    return JsonResponse(api.get_datastore(workspace, name).to_dict())


@router.get("/default-datastore")
def get_default_datastore(workspace: Readable, api: Api) -> JsonResponse:
    return JsonResponse(api.get_default_datastore(workspace).to_dict())


@router.put("/default-datastore")
def set_default_datastore(body: DefaultSet, workspace: Managed, api: Api) -> JsonResponse:
    return JsonResponse(api.set_default_datastore(workspace, body.name).to_dict())


@router.get("/datastores/{name}/browse")
def browse_datastore(
    workspace: Readable,
    name: Name,
    api: Api,
    path: Annotated[str, Query(max_length=4096)] = "",
    recursive: bool = False,
) -> JsonResponse:
    found = api.browse_datastore(workspace, name, path, recursive)
    return JsonResponse({"files": [f.to_dict() for f in found]})


@router.put("/datastores/{name}/files/{path:path}", status_code=201)
async def upload_to_datastore(
    request: Request, workspace: Writable, name: Name, path: FilePath, api: Api
) -> JsonResponse:
    """Store the request body as ``path`` in the datastore (replacing any file there)."""
    reader = body_reader(request.stream())
    try:
        size = await run_in_threadpool(api.upload_to_datastore, workspace, name, path, reader)
    except ClientDisconnect:
        raise InvalidInput(f"The upload of {path!r} was interrupted; send it again.") from None
    return JsonResponse({"path": path, "size": size}, status_code=201)


# ------------------------------------------------------------- dataset files
@router.get("/dataset-blobs/{sha256}")
def has_dataset_file(
    workspace: Readable, sha256: Annotated[str, Path(max_length=64)], api: Api
) -> JsonResponse:
    return JsonResponse({"exists": api.has_dataset_file(workspace, sha256)})


@router.put("/dataset-blobs/{sha256}", status_code=201)
async def upload_dataset_file(
    request: Request, workspace: Writable, sha256: Annotated[str, Path(max_length=64)], api: Api
) -> JsonResponse:
    """A file of a dataset to be, stored under the SHA-256 of its bytes (checked)."""
    reader = body_reader(request.stream())
    try:
        size = await run_in_threadpool(api.upload_dataset_file, workspace, sha256, reader)
    except ClientDisconnect:
        raise InvalidInput("The upload was interrupted; send it again.") from None
    return JsonResponse({"sha256": sha256, "size": size}, status_code=201)


# ------------------------------------------------------------------ datasets
@router.post("/datasets/{name}/versions", status_code=201)
def register_dataset(
    body: VersionCreate, workspace: Writable, name: Name, api: Api
) -> JsonResponse:
    """The version holding these files: a new one, or the one with the same content."""
    info = api.register_dataset(
        workspace,
        name,
        body.kind,
        files=[f.model_dump() for f in body.files] if body.files is not None else None,
        datastore=body.datastore,
        pattern=body.pattern,
        format=body.format,
        description=body.description,
        tags=body.tags,
        create_new_version=body.create_new_version,
        source=body.source,
        user=body.user,
    )
    return JsonResponse(info.to_dict(), status_code=201)


@router.get("/datasets")
def list_datasets(
    workspace: Readable,
    api: Api,
    name: Annotated[str | None, Query(max_length=250)] = None,
    latest: bool = False,
) -> JsonResponse:
    found = api.list_datasets(workspace, name, latest)
    return JsonResponse({"versions": [v.to_dict() for v in found]})


@router.get("/datasets/{name}/versions/{version}")
def get_dataset(
    workspace: Readable, name: Name, version: Annotated[str, Path(max_length=12)], api: Api
) -> JsonResponse:
    """A version by number, or ``latest``."""
    if version == LATEST:
        number = None
    elif version.isdigit() and 1 <= int(version) < 2**31:
        number = int(version)
    else:
        raise InvalidInput(f"A dataset version is a number or 'latest', not {version!r}.")
    return JsonResponse(api.get_dataset(workspace, name, number).to_dict())


@router.delete("/datasets/{name}/versions/{version}")
def delete_dataset_version(
    workspace: Writable, name: Name, version: Version, api: Api
) -> JsonResponse:
    api.delete_dataset_version(workspace, name, version)
    return JsonResponse({})


@router.get("/datasets/{name}/versions/{version}/files/{path:path}")
def download_dataset_file(
    workspace: Readable, name: Name, version: Version, path: FilePath, api: Api
) -> StreamingResponse:
    handle = api.open_dataset_file(workspace, name, version, path)
    return StreamingResponse(file_chunks(handle), media_type="application/octet-stream")


@router.get("/datasets/{name}/versions/{version}/take")
def take(
    workspace: Readable,
    name: Name,
    version: Version,
    api: Api,
    n: Annotated[int, Query(ge=0, le=10_000)] = 10,
) -> JsonResponse:
    return JsonResponse(api.take(workspace, name, version, n))


@router.get("/datasets/{name}/versions/{version}/runs")
def dataset_runs(workspace: Readable, name: Name, version: Version, api: Api) -> JsonResponse:
    runs = api.dataset_runs(workspace, name, version)
    return JsonResponse({"runs": [r.to_dict() for r in runs]})


@router.get("/datasets/{name}/versions/{version}/compare")
def compare_datasets(
    workspace: Readable,
    name: Name,
    version: Version,
    api: Api,
    other: Annotated[str, Query(max_length=250)],
    other_version: Annotated[int, Query(ge=1, le=2**31 - 1)],
    threshold: Annotated[float, Query(ge=0, le=1e6)] = 0.2,
) -> JsonResponse:
    return JsonResponse(
        api.compare_datasets(workspace, name, version, other, other_version, threshold)
    )


@router.get("/datasets/{name}/versions/{version}/compare-endpoint")
def compare_with_endpoint(
    workspace: Readable,
    name: Name,
    version: Version,
    api: Api,
    endpoint: Annotated[str, Query(max_length=250)],
    deployment: Annotated[str | None, Query(max_length=250)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    threshold: Annotated[float, Query(ge=0, le=1e6)] = 0.2,
) -> JsonResponse:
    """Drift of an endpoint's sampled requests against the version, per column."""
    return JsonResponse(
        api.compare_with_endpoint(workspace, name, version, endpoint, deployment, limit, threshold)
    )


@router.get("/lineage")
def lineage(
    workspace: Readable,
    api: Api,
    dataset: Annotated[str | None, Query(max_length=250)] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    model: Annotated[str | None, Query(max_length=256)] = None,
    model_version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    run_id: Annotated[str | None, Query(max_length=64)] = None,
) -> JsonResponse:
    """The graph around a dataset version, a model version or a run: dataset -> run ->
    model -> endpoint."""
    return JsonResponse(api.lineage(workspace, dataset, version, model, model_version, run_id))
