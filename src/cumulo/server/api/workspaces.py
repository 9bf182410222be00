"""``/api/v1/workspaces``: create, get and list workspaces."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cumulo.server import access
from cumulo.server.api.common import PREFIX, Readable, Tracking
from cumulo.server.auth import may_read, token_auth
from cumulo.server.responses import JsonResponse

router = APIRouter(prefix=PREFIX, tags=["workspaces"])


class WorkspaceCreate(BaseModel):
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=10_000)
    exist_ok: bool = False


@router.post("/workspaces", status_code=201, dependencies=[Depends(access.server_owner)])
async def create_workspace(body: WorkspaceCreate, service: Tracking) -> JsonResponse:
    """Create a workspace (with token auth: an owner token for every workspace)."""
    info = await run_in_threadpool(
        service.create_workspace, body.name, body.exist_ok, body.description
    )
    return JsonResponse(info.to_dict(), status_code=201)


@router.get("/workspaces", dependencies=[Depends(access.signed_in)])
def list_workspaces(request: Request, service: Tracking) -> JsonResponse:
    """The workspaces this request's token may read (all of them without token auth)."""
    found = service.list_workspaces()
    if token_auth(request):
        found = [w for w in found if may_read(request, w.name)]
    return JsonResponse({"workspaces": [w.to_dict() for w in found]})


@router.get("/workspaces/{workspace}")
def get_workspace(workspace: Readable, service: Tracking) -> JsonResponse:
    return JsonResponse(service.get_workspace(workspace).to_dict())
