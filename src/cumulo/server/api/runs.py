"""``/api/v1/workspaces/{workspace}/runs``: runs, their status, tags and properties."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from cumulo.core.validation import INT64_MAX
from cumulo.server.api.common import WS, Readable, Tracking, Writable
from cumulo.server.responses import JsonResponse, run_dict

router = APIRouter(prefix=WS + "/runs", tags=["runs"])

RunId = Annotated[str, Path(max_length=64)]
Int64 = Annotated[int, Field(ge=0, le=INT64_MAX)]
Text = Annotated[str, Field(max_length=100_000)]


class RunCreate(BaseModel):
    experiment_id: Int64
    display_name: str | None = Field(default=None, max_length=10_000)
    parent_id: str | None = Field(default=None, max_length=64)
    kind: str = Field(default="interactive", max_length=32)
    status: str = Field(default="Running", max_length=32)
    tags: dict[str, Text] | None = None
    user: str = Field(default="", max_length=250)
    compute_target: str | None = Field(default=None, max_length=250)
    start_time: Int64 | None = None


class RunSearch(BaseModel):
    experiment_ids: list[Int64] | None = None
    filter: str | None = Field(default=None, max_length=100_000)
    order_by: list[Annotated[str, Field(max_length=1000)]] | str | None = None
    max_results: int = Field(default=1000, ge=1, le=50_000)
    page_token: str | None = Field(default=None, max_length=1000)
    statuses: list[Annotated[str, Field(max_length=32)]] | None = None
    tags: dict[str, Text | None] | None = None
    parent_id: str | None = Field(default=None, max_length=64)
    top_level_only: bool = False
    view: Literal["active", "deleted", "all"] = "active"


class RunStatusUpdate(BaseModel):
    status: str = Field(max_length=32)
    error: dict[str, Any] | None = None
    at: Int64 | None = None


class RunUpdate(BaseModel):
    display_name: str | None = Field(default=None, max_length=10_000)
    deleted: bool | None = None


class TagsSet(BaseModel):
    tags: dict[str, Text]


class TagsDelete(BaseModel):
    keys: list[Annotated[str, Field(max_length=1000)]]


class PropertiesAdd(BaseModel):
    properties: dict[str, Text]


@router.post("", status_code=201)
def create_run(body: RunCreate, workspace: Writable, service: Tracking) -> JsonResponse:
    info = service.create_run(workspace, **body.model_dump())
    return JsonResponse(run_dict(info), status_code=201)


@router.post("/search")
def search_runs(body: RunSearch, workspace: Readable, service: Tracking) -> JsonResponse:
    """Runs matching a filter (the MLflow grammar), ordered and paged."""
    page = service.search_runs(workspace, **body.model_dump())
    return JsonResponse(
        {"runs": [run_dict(r) for r in page.runs], "next_page_token": page.next_page_token}
    )


@router.get("/find")
def find_run(
    workspace: Readable, service: Tracking, id: Annotated[str, Query(min_length=1, max_length=64)]
) -> JsonResponse:
    """The run whose id is ``id`` or uniquely starts with it (6+ characters)."""
    return JsonResponse(run_dict(service.find_run(workspace, id)))


@router.get("/{run_id}")
def get_run(workspace: Readable, run_id: RunId, service: Tracking) -> JsonResponse:
    return JsonResponse(run_dict(service.get_run(workspace, run_id)))


@router.post("/{run_id}/status")
def set_run_status(
    body: RunStatusUpdate, workspace: Writable, run_id: RunId, service: Tracking
) -> JsonResponse:
    info = service.set_run_status(workspace, run_id, body.status, error=body.error, at=body.at)
    return JsonResponse(run_dict(info))


@router.patch("/{run_id}")
def update_run(
    body: RunUpdate, workspace: Writable, run_id: RunId, service: Tracking
) -> JsonResponse:
    info = service.update_run(
        workspace, run_id, display_name=body.display_name, deleted=body.deleted
    )
    return JsonResponse(run_dict(info))


@router.delete("/{run_id}")
def delete_run(workspace: Writable, run_id: RunId, service: Tracking) -> JsonResponse:
    """Delete a run, its child runs and all their files, for good."""
    return JsonResponse({"run_ids": service.delete_run(workspace, run_id)})


@router.post("/{run_id}/tags")
def set_tags(body: TagsSet, workspace: Writable, run_id: RunId, service: Tracking) -> JsonResponse:
    service.set_tags(workspace, run_id, body.tags)
    return JsonResponse({})


@router.post("/{run_id}/tags/delete")
def delete_tags(
    body: TagsDelete, workspace: Writable, run_id: RunId, service: Tracking
) -> JsonResponse:
    service.delete_tags(workspace, run_id, body.keys)
    return JsonResponse({})


@router.post("/{run_id}/properties")
def add_properties(
    body: PropertiesAdd, workspace: Writable, run_id: RunId, service: Tracking
) -> JsonResponse:
    service.add_properties(workspace, run_id, body.properties)
    return JsonResponse({})
