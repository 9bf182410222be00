"""``/api/v1/workspaces/{workspace}/endpoints``: endpoints, deployments, keys, logs, metrics.

Scoring itself is not here: ``include`` mounts the endpoint router at
``/endpoints/<workspace>/<endpoint>/score`` (keys or tokens checked there); the
app's lifespan (``server/app.py``) runs the replica supervisor, so endpoints are
served for as long as the server runs and outlive the clients that deployed them.
"""

from __future__ import annotations

import tempfile
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.routing import Mount

from cumulo.core.deployments import DeploymentInfo, EndpointInfo
from cumulo.core.errors import PermissionDenied
from cumulo.server.api.common import WS, Readable, Writable
from cumulo.server.auth import require
from cumulo.server.responses import JsonResponse
from cumulo.services.deployments import DeploymentService

router = APIRouter(prefix=WS + "/endpoints", tags=["endpoints"])

EndpointName = Annotated[str, Path(max_length=64)]
DeploymentName = Annotated[str, Path(max_length=64)]
Text = Annotated[str, Field(max_length=10_000)]


async def _deployments(request: Request) -> DeploymentService:
    service: DeploymentService = request.app.state.services.deployments
    return service


Api = Annotated[DeploymentService, Depends(_deployments)]


class EndpointCreate(BaseModel):
    name: str = Field(max_length=64)
    auth: Literal["key", "token", "none"] = "key"
    description: str = Field(default="", max_length=10_000)
    tags: dict[str, Text] | None = None


class EndpointUpdate(BaseModel):
    traffic: dict[str, int] | None = None
    mirror_traffic: dict[str, int] | None = None
    auth: Literal["key", "token", "none"] | None = None
    description: str | None = Field(default=None, max_length=10_000)
    tags: dict[str, Text] | None = None


class ModelRef(BaseModel):
    name: str = Field(max_length=256)
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    alias: str | None = Field(default=None, max_length=255)


class DeploymentCreate(BaseModel):
    name: str = Field(max_length=64)
    models: list[ModelRef] = Field(default_factory=list, max_length=100)
    config: dict[str, Any] | None = None


class DeploymentUpdate(BaseModel):
    models: list[ModelRef] | None = Field(default=None, max_length=100)
    config: dict[str, Any] | None = None


class KeyRegenerate(BaseModel):
    which: Literal["primary", "secondary"] = "primary"


def _shown(request: Request, workspace: str, info: EndpointInfo | DeploymentInfo) -> Any:
    """The endpoint or deployment as JSON; where its replicas run only for the owners."""
    try:
        require(request, workspace, write=True, manage=True)
    except PermissionDenied:
        return info.without_addresses().to_dict()
    return info.to_dict()


def _refs(models: list[ModelRef] | None) -> list[dict[str, Any]] | None:
    if models is None:
        return None
    return [m.model_dump(exclude_none=True) for m in models]


@router.post("", status_code=201)
def create_endpoint(body: EndpointCreate, workspace: Writable, api: Api) -> JsonResponse:
    info = api.create_endpoint(workspace, body.name, body.auth, body.description, body.tags)
    return JsonResponse(info.to_dict(), status_code=201)


@router.get("")
def list_endpoints(request: Request, workspace: Readable, api: Api) -> JsonResponse:
    found = api.list_endpoints(workspace)
    return JsonResponse({"endpoints": [_shown(request, workspace, e) for e in found]})


@router.get("/{name}")
def get_endpoint(
    request: Request, workspace: Readable, name: EndpointName, api: Api
) -> JsonResponse:
    return JsonResponse(_shown(request, workspace, api.get_endpoint(workspace, name)))


@router.patch("/{name}")
def update_endpoint(
    request: Request, body: EndpointUpdate, workspace: Writable, name: EndpointName, api: Api
) -> JsonResponse:
    info = api.update_endpoint(
        workspace,
        name,
        traffic=body.traffic,
        mirror_traffic=body.mirror_traffic,
        auth=body.auth,
        description=body.description,
        tags=body.tags,
    )
    return JsonResponse(_shown(request, workspace, info))


@router.delete("/{name}")
def delete_endpoint(workspace: Writable, name: EndpointName, api: Api) -> JsonResponse:
    api.delete_endpoint(workspace, name)
    return JsonResponse({})


@router.get("/{name}/keys")
def get_keys(workspace: Writable, name: EndpointName, api: Api) -> JsonResponse:
    """The endpoint's keys (contributors and owners only: they open the endpoint)."""
    return JsonResponse(api.get_keys(workspace, name))


@router.post("/{name}/keys/regenerate")
def regenerate_key(
    body: KeyRegenerate, workspace: Writable, name: EndpointName, api: Api
) -> JsonResponse:
    return JsonResponse(api.regenerate_key(workspace, name, body.which))


@router.put("/{name}/artifacts/{archive}", status_code=201)
async def upload_code(
    request: Request,
    workspace: Writable,
    name: EndpointName,
    api: Api,
    archive: Annotated[str, Path(max_length=200)],
) -> JsonResponse:
    """Store a zip of the scoring code (the request body); returns its reference.

    Counted as it arrives: refused (413) as soon as it passes the code limit.
    """
    from starlette.concurrency import run_in_threadpool

    from cumulo.server.limits import receive_upload
    from cumulo.services import deployments

    with tempfile.TemporaryFile() as tmp:
        await receive_upload(request, tmp, deployments.MAX_CODE_BYTES, "the scoring code")
        tmp.seek(0)
        ref = await run_in_threadpool(api.upload_code, workspace, name, tmp)
    return JsonResponse({"code": ref}, status_code=201)


@router.post("/{name}/deployments", status_code=201)
def create_deployment(
    request: Request, body: DeploymentCreate, workspace: Writable, name: EndpointName, api: Api
) -> JsonResponse:
    info = api.create_deployment(workspace, name, body.name, _refs(body.models) or [], body.config)
    return JsonResponse(_shown(request, workspace, info), status_code=201)


@router.patch("/{name}/deployments/{deployment}")
def update_deployment(
    request: Request,
    body: DeploymentUpdate,
    workspace: Writable,
    name: EndpointName,
    deployment: DeploymentName,
    api: Api,
) -> JsonResponse:
    info = api.update_deployment(workspace, name, deployment, _refs(body.models), body.config)
    return JsonResponse(_shown(request, workspace, info))


@router.delete("/{name}/deployments/{deployment}")
def delete_deployment(
    workspace: Writable, name: EndpointName, deployment: DeploymentName, api: Api
) -> JsonResponse:
    api.delete_deployment(workspace, name, deployment)
    return JsonResponse({})


@router.get("/{name}/logs")
def get_logs(
    workspace: Readable,
    name: EndpointName,
    api: Api,
    deployment: Annotated[str | None, Query(max_length=64)] = None,
    tail: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> JsonResponse:
    return JsonResponse({"logs": api.get_logs(workspace, name, deployment, tail)})


@router.get("/{name}/metrics")
def get_metrics(
    workspace: Readable,
    name: EndpointName,
    api: Api,
    deployment: Annotated[str | None, Query(max_length=64)] = None,
    minutes: Annotated[int, Query(ge=1, le=44_640)] = 60,
) -> JsonResponse:
    return JsonResponse({"metrics": api.get_metrics(workspace, name, deployment, minutes)})


@router.get("/{name}/requests")
def get_request_logs(
    workspace: Readable,
    name: EndpointName,
    api: Api,
    deployment: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JsonResponse:
    return JsonResponse({"requests": api.get_request_logs(workspace, name, deployment, limit)})


def include(app: FastAPI, scoring: bool = True) -> None:
    """Management routes and (with ``scoring``) the scoring router at ``/endpoints``."""
    from cumulo.server.api import models

    app.include_router(models.router)
    app.include_router(router)
    if not scoring:
        return
    router_app = app.state.services.hosting.router
    # First in the routing table: a scoring request matches at once instead of after
    # every API and studio route (Starlette tries routes in order).
    app.router.routes.insert(0, Mount("/endpoints", app=router_app, name="endpoints"))
