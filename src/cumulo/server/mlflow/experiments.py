"""MLflow's experiment endpoints over Cumulo experiments (``/api/2.0/mlflow/experiments/...``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from cumulo.core.entities import ExperimentInfo
from cumulo.core.errors import InvalidInput, NotFound
from cumulo.core.pages import decode_token, encode_token
from cumulo.core.search import Clause, OrderBy, parse_filter
from cumulo.server.mlflow import convert
from cumulo.server.mlflow.common import (
    MlflowRoute,
    Msg,
    Readable,
    Registry,
    Tracking,
    Writable,
    max_results,
)
from cumulo.server.mlflow.direct import point_route
from cumulo.server.mlflow.filters import (
    EXPERIMENTS,
    attribute_order,
    matches,
)
from cumulo.server.responses import JsonResponse

P = "/api/2.0/mlflow/experiments"
MAX_DATASET_EXPERIMENTS = 20
MAX_EXPERIMENTS_PAGE = 50_000
VIEWS = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": "all"}

router = APIRouter(route_class=MlflowRoute, include_in_schema=False)


def _id(request: Request, tracking: Tracking, workspace: str, msg: Msg) -> int:
    return convert.experiment_id_in(request, tracking, workspace, msg.need("experiment_id"))


@router.post(P + "/create")
def create(workspace: Writable, msg: Msg, tracking: Tracking) -> JsonResponse:
    name = msg.need("name")
    # artifact_location is checked as MLflow checks it, but files always go through this
    # server's store (docs/mlflow-compatibility.md).
    msg.text("artifact_location")
    exp = tracking.create_experiment(workspace, name, msg.key_values("tags"))
    return JsonResponse({"experiment_id": str(exp.id)})


@router.get(P + "/get")
@point_route
def get(request: Request, workspace: Readable, msg: Msg, tracking: Tracking) -> JsonResponse:
    exp = tracking.get_experiment(workspace, _id(request, tracking, workspace, msg))
    return JsonResponse({"experiment": convert.experiment(exp)})


@router.get(P + "/get-by-name")
@point_route
def get_by_name(workspace: Readable, msg: Msg, tracking: Tracking) -> JsonResponse:
    name = msg.need("experiment_name")
    try:
        exp = tracking.get_experiment(workspace, name=name)
    except NotFound:
        raise NotFound(f"Could not find experiment with name '{name}'.") from None
    return JsonResponse({"experiment": convert.experiment(exp)})


@router.api_route(P + "/search", methods=["GET", "POST"])
def search(workspace: Readable, msg: Msg, tracking: Tracking) -> JsonResponse:
    view = VIEWS.get((msg.text("view_type") or "ACTIVE_ONLY").upper())
    if view is None:
        raise InvalidInput(f"view_type must be one of {', '.join(VIEWS)}.")
    limit = max_results(msg, 1000, MAX_EXPERIMENTS_PAGE)
    clauses = parse_filter(msg.text("filter"), EXPERIMENTS)
    orders = attribute_order(msg.repeated("order_by"), EXPERIMENTS)
    offset = decode_token(msg.text("page_token"))
    # Workspaces hold tens or hundreds of experiments: filtered here, not in SQL.
    found = tracking.list_experiments(workspace, include_archived=True, view=view)
    selected = _sorted([e for e in found if all(_matches(c, e) for c in clauses)], orders)
    page = selected[offset : offset + limit]
    body: dict[str, Any] = {"experiments": [convert.experiment(e) for e in page]}
    if offset + limit < len(selected):
        body["next_page_token"] = encode_token(offset + limit)
    return JsonResponse(body)


def _field(exp: ExperimentInfo, key: str) -> Any:
    if key == "id":
        return "0" if exp.is_default else str(exp.id)
    return getattr(exp, key)


def _by(key: str) -> Callable[[ExperimentInfo], Any]:
    return lambda exp: _field(exp, key)


def _matches(c: Clause, exp: ExperimentInfo) -> bool:
    value = exp.tags.get(c.key) if c.entity == "tag" else _field(exp, c.key)
    return matches(c, value)


def _sorted(experiments: list[ExperimentInfo], orders: list[OrderBy]) -> list[ExperimentInfo]:
    # MLflow's default order: newest first, then by id; explicit keys apply on top.
    out = sorted(experiments, key=lambda e: e.id)
    out.sort(key=lambda e: e.created_at, reverse=True)
    for o in reversed(orders):
        if o.key == "id":
            out.sort(key=lambda e: 0 if e.is_default else e.id, reverse=not o.ascending)
        else:
            out.sort(key=_by(o.key), reverse=not o.ascending)
    return out


@router.post(P + "/update")
def update(request: Request, workspace: Writable, msg: Msg, tracking: Tracking) -> JsonResponse:
    exp_id = _id(request, tracking, workspace, msg)
    new_name = msg.text("new_name")
    if new_name:
        tracking.update_experiment(workspace, exp_id, name=new_name)
    return JsonResponse({})


@router.post(P + "/delete")
def delete(request: Request, workspace: Writable, msg: Msg, tracking: Tracking) -> JsonResponse:
    tracking.update_experiment(workspace, _id(request, tracking, workspace, msg), deleted=True)
    return JsonResponse({})


@router.post(P + "/restore")
def restore(request: Request, workspace: Writable, msg: Msg, tracking: Tracking) -> JsonResponse:
    tracking.update_experiment(workspace, _id(request, tracking, workspace, msg), deleted=False)
    return JsonResponse({})


@router.post(P + "/set-experiment-tag")
def set_tag(request: Request, workspace: Writable, msg: Msg, tracking: Tracking) -> JsonResponse:
    exp_id = _id(request, tracking, workspace, msg)
    tracking.set_experiment_tag(workspace, exp_id, msg.need("key"), msg.text("value", default=""))
    return JsonResponse({})


@router.post(P + "/delete-experiment-tag")
def delete_tag(request: Request, workspace: Writable, msg: Msg, tracking: Tracking) -> JsonResponse:
    exp_id = _id(request, tracking, workspace, msg)
    tracking.set_experiment_tag(workspace, exp_id, msg.need("key"), None)
    return JsonResponse({})


@router.post(P + "/search-datasets")
def search_datasets(
    request: Request, workspace: Readable, msg: Msg, tracking: Tracking, registry: Registry
) -> JsonResponse:
    """The datasets the runs of some experiments read (MLflow's web UI lists them)."""
    ids = msg.repeated("experiment_ids")  # none at all: the service refuses it
    if len(ids) > MAX_DATASET_EXPERIMENTS:
        raise InvalidInput(
            f"SearchDatasets request cannot specify more than {MAX_DATASET_EXPERIMENTS} "
            f"experiment_ids. Received {len(ids)} experiment_ids."
        )
    exp_ids = [convert.experiment_id_in(request, tracking, workspace, i) for i in ids]
    default_id = convert.default_experiment_id(request, tracking, workspace)
    summaries = []
    for exp_id, name, digest, context in registry.dataset_summaries(workspace, exp_ids):
        item = {
            "experiment_id": convert.experiment_id_out(exp_id, default_id),
            "name": name,
            "digest": digest,
        }
        if context is not None:
            item["context"] = context
        summaries.append(item)
    return JsonResponse({"dataset_summaries": summaries})
