"""``/api/v1/workspaces/{workspace}/experiments``: experiments of a workspace."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from cumulo.core.validation import INT64_MAX
from cumulo.server.api.common import WS, Readable, Tracking, Writable
from cumulo.server.responses import JsonResponse

router = APIRouter(prefix=WS + "/experiments", tags=["experiments"])

ExperimentId = Annotated[int, Path(ge=0, le=INT64_MAX)]
View = Literal["active", "deleted", "all"]


class ExperimentCreate(BaseModel):
    name: str = Field(max_length=10_000)
    tags: dict[str, str] | None = None
    # True: return the experiment of that name if there is one (no 409).
    get_or_create: bool = False


class ExperimentUpdate(BaseModel):
    name: str | None = Field(default=None, max_length=10_000)
    archived: bool | None = None
    deleted: bool | None = None


class ExperimentTag(BaseModel):
    key: str = Field(max_length=10_000)
    value: str | None = Field(default=None, max_length=100_000)


@router.post("", status_code=201)
def create_experiment(
    body: ExperimentCreate, workspace: Writable, service: Tracking
) -> JsonResponse:
    if body.get_or_create and not body.tags:
        info = service.get_or_create_experiment(workspace, body.name)
    else:
        info = service.create_experiment(workspace, body.name, body.tags)
    return JsonResponse(info.to_dict(), status_code=201)


@router.get("")
def list_experiments(
    workspace: Readable,
    service: Tracking,
    include_archived: bool = False,
    view: View = "active",
) -> JsonResponse:
    found = service.list_experiments(workspace, include_archived=include_archived, view=view)
    return JsonResponse({"experiments": [e.to_dict() for e in found]})


@router.get("/by-name")
def get_experiment_by_name(
    workspace: Readable, service: Tracking, name: Annotated[str, Query(max_length=10_000)]
) -> JsonResponse:
    return JsonResponse(service.get_experiment(workspace, name=name).to_dict())


@router.get("/{experiment_id}")
def get_experiment(
    workspace: Readable, experiment_id: ExperimentId, service: Tracking
) -> JsonResponse:
    return JsonResponse(service.get_experiment(workspace, experiment_id=experiment_id).to_dict())


@router.get("/{experiment_id}/keys")
def run_keys(workspace: Readable, experiment_id: ExperimentId, service: Tracking) -> JsonResponse:
    """The metric, param and tag keys the experiment's runs use."""
    return JsonResponse(service.run_keys(workspace, experiment_id))


@router.patch("/{experiment_id}")
def update_experiment(
    body: ExperimentUpdate, workspace: Writable, experiment_id: ExperimentId, service: Tracking
) -> JsonResponse:
    info = service.update_experiment(
        workspace, experiment_id, name=body.name, archived=body.archived, deleted=body.deleted
    )
    return JsonResponse(info.to_dict())


@router.delete("/{experiment_id}")
def delete_experiment(
    workspace: Writable, experiment_id: ExperimentId, service: Tracking
) -> JsonResponse:
    """Delete an experiment, its runs and their files, for good."""
    return JsonResponse({"run_ids": service.delete_experiment(workspace, experiment_id)})


@router.post("/{experiment_id}/tags")
def set_experiment_tag(
    body: ExperimentTag, workspace: Writable, experiment_id: ExperimentId, service: Tracking
) -> JsonResponse:
    """Set a tag (``value`` null removes it)."""
    service.set_experiment_tag(workspace, experiment_id, body.key, body.value)
    return JsonResponse({})
