"""MLflow 3's logged-model endpoints (``/api/2.0/mlflow/logged-models/...``), which
``mlflow.<flavor>.log_model`` calls; the files go to ``<workspace>/logged-models/<id>/``
through the artifact proxy.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from cumulo.core.errors import InvalidInput
from cumulo.core.names import run_display_name
from cumulo.core.search import OrderBy, parse_filter
from cumulo.server.mlflow import convert
from cumulo.server.mlflow.common import (
    Message,
    MlflowRoute,
    Msg,
    Readable,
    Registry,
    Tracking,
    Writable,
    max_results,
)
from cumulo.server.mlflow.filters import LOGGED_MODEL_ATTRIBUTES, LOGGED_MODELS
from cumulo.server.responses import JsonResponse
from cumulo.server.streams import attachment
from cumulo.services.registry import MAX_LOGGED_MODELS_PAGE

P = "/api/2.0/mlflow/logged-models"

router = APIRouter(route_class=MlflowRoute, include_in_schema=False)


def _render(request: Request, tracking: Tracking, workspace: str, model: Any) -> dict[str, Any]:
    default_id = convert.default_experiment_id(request, tracking, workspace)
    return convert.logged_model(model, default_id)


@router.post(P)
def create(
    request: Request, workspace: Writable, msg: Msg, tracking: Tracking, registry: Registry
) -> JsonResponse:
    exp_id = convert.experiment_id_in(request, tracking, workspace, msg.need("experiment_id"))
    model = registry.create_logged_model(
        workspace,
        exp_id,
        # MLflow gives an unnamed model a random name of its own, as it does a run.
        name=msg.text("name") or run_display_name(),
        model_type=msg.text("model_type"),
        source_run_id=msg.text("source_run_id"),
        params=msg.key_values("params"),
        tags=msg.key_values("tags"),
    )
    return JsonResponse({"model": _render(request, tracking, workspace, model)})


@router.post(P + "/search")
def search(
    request: Request, workspace: Readable, msg: Msg, tracking: Tracking, registry: Registry
) -> JsonResponse:
    ids = msg.repeated("experiment_ids")
    exp_ids = [convert.experiment_id_in(request, tracking, workspace, i) for i in ids]
    orders = []
    for item in msg.objects("order_by"):
        o = Message(item)
        field = o.need("field_name")
        key = LOGGED_MODEL_ATTRIBUTES.get(field)
        if key is None:
            raise InvalidInput(f"Cannot order logged models by {field!r}.")
        orders.append(OrderBy("attribute", key, o.flag("ascending", True)))
    clauses = parse_filter(msg.text("filter"), LOGGED_MODELS)
    for i, c in enumerate(clauses):
        if c.entity == "attribute" and c.key == "status" and isinstance(c.value, str):
            status = convert.LOGGED_STATUS_IN.get(c.value.upper(), c.value)
            clauses[i] = type(c)(c.entity, c.key, c.op, status)
    datasets = []
    for item in msg.objects("datasets"):
        d = Message(item)
        datasets.append((d.text("dataset_name") or "", d.text("dataset_digest")))
    models, token = registry.search_logged_models(
        workspace,
        exp_ids or None,
        clauses,
        orders,
        max_results(msg, 100, MAX_LOGGED_MODELS_PAGE),
        msg.text("page_token"),
        datasets,
    )
    body: dict[str, Any] = {"models": [_render(request, tracking, workspace, m) for m in models]}
    if token:
        body["next_page_token"] = token
    return JsonResponse(body)


@router.get(P + "/{model_id}")
def get(
    request: Request,
    model_id: str,
    workspace: Readable,
    msg: Msg,
    tracking: Tracking,
    registry: Registry,
) -> JsonResponse:
    model = registry.get_logged_model(workspace, model_id, msg.flag("allow_deleted"))
    return JsonResponse({"model": _render(request, tracking, workspace, model)})


@router.patch(P + "/{model_id}")
def finalize(
    request: Request,
    model_id: str,
    workspace: Writable,
    msg: Msg,
    tracking: Tracking,
    registry: Registry,
) -> JsonResponse:
    raw = msg.need("status")
    status = convert.LOGGED_STATUS_IN.get(raw.upper())
    if status is None:
        raise InvalidInput(f"Unknown logged model status {raw!r}.")
    model = registry.finalize_logged_model(workspace, model_id, status)
    return JsonResponse({"model": _render(request, tracking, workspace, model)})


@router.delete(P + "/{model_id}")
def delete(model_id: str, workspace: Writable, registry: Registry) -> JsonResponse:
    registry.delete_logged_model(workspace, model_id)
    return JsonResponse({})


@router.patch(P + "/{model_id}/tags")
def set_tags(
    request: Request,
    model_id: str,
    workspace: Writable,
    msg: Msg,
    tracking: Tracking,
    registry: Registry,
) -> JsonResponse:
    registry.set_logged_model_tags(workspace, model_id, msg.key_values("tags"))
    model = registry.get_logged_model(workspace, model_id)
    return JsonResponse({"model": _render(request, tracking, workspace, model)})


@router.delete(P + "/{model_id}/tags/{tag_key:path}")
def delete_tag(
    model_id: str, tag_key: str, workspace: Writable, registry: Registry
) -> JsonResponse:
    registry.delete_logged_model_tag(workspace, model_id, tag_key)
    return JsonResponse({})


@router.post(P + "/{model_id}/params")
def log_params(model_id: str, workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    registry.log_logged_model_params(workspace, model_id, msg.key_values("params"))
    return JsonResponse({})


@router.get(P + "/{model_id}/artifacts/directories")
def list_files(model_id: str, workspace: Readable, msg: Msg, registry: Registry) -> JsonResponse:
    path = msg.text("artifact_directory_path") or ""
    files = registry.list_logged_model_files(workspace, model_id, path)
    return JsonResponse(
        {
            "root_uri": f"mlflow-artifacts:/{workspace}/logged-models/{model_id}",
            "files": [convert.file_info(f, f.path) for f in files],
        }
    )


@router.get(P + "/{model_id}/artifacts/files")
def get_file(model_id: str, workspace: Readable, msg: Msg, registry: Registry) -> StreamingResponse:
    """One of a logged model's files (MLflow's web UI shows them with this route)."""
    path = msg.need("artifact_file_path")
    return attachment(registry.open_logged_model_file(workspace, model_id, path), path)
