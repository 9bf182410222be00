"""MLflow's model registry endpoints (``/api/2.0/mlflow/registered-models/...`` and
``/api/2.0/mlflow/model-versions/...``) over Cumulo's registry service.

A version created here gets its own copy of the model's files; its download URI
(``mlflow-artifacts:/<workspace>/models/<name>/<version>``) is served read-only by
the artifact proxy.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter

from cumulo.core.errors import NotFound
from cumulo.core.search import OrderBy, parse_filter
from cumulo.server.mlflow import convert
from cumulo.server.mlflow.common import (
    MlflowRoute,
    Msg,
    Readable,
    Registry,
    Writable,
    max_results,
)
from cumulo.server.mlflow.filters import (
    MODEL_VERSIONS,
    REGISTERED_MODELS,
    attribute_order,
)
from cumulo.server.responses import JsonResponse
from cumulo.services.registry import MAX_MODELS_PAGE, MAX_VERSIONS_PAGE, RegistryService

M = "/api/2.0/mlflow/registered-models"
V = "/api/2.0/mlflow/model-versions"
MODEL_VERSIONS_TAG = "mlflow.modelVersions"
VERSIONS_ORDER = (
    OrderBy("attribute", "updated_at", False),
    OrderBy("attribute", "name", True),
    OrderBy("attribute", "version", False),
)

router = APIRouter(route_class=MlflowRoute, include_in_schema=False)


def _paged(key: str, items: list[dict[str, Any]], token: str | None) -> JsonResponse:
    body: dict[str, Any] = {key: items}
    if token:
        body["next_page_token"] = token
    return JsonResponse(body)


# ------------------------------------------------------------ registered models
@router.post(M + "/create")
def create_model(workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    model = registry.create_model(
        workspace,
        msg.need("name"),
        description=msg.text("description") or "",
        tags=msg.key_values("tags"),
    )
    return JsonResponse({"registered_model": convert.registered_model(model)})


@router.get(M + "/get")
def get_model(workspace: Readable, msg: Msg, registry: Registry) -> JsonResponse:
    model = registry.get_model(workspace, msg.need("name"))
    return JsonResponse({"registered_model": convert.registered_model(model)})


@router.post(M + "/rename")
def rename_model(workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    model = registry.rename_model(workspace, msg.need("name"), msg.need("new_name"))
    return JsonResponse({"registered_model": convert.registered_model(model)})


@router.patch(M + "/update")
def update_model(workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    name = msg.need("name")
    if "description" in msg:
        model = registry.update_model(workspace, name, msg.text("description") or "")
    else:
        model = registry.get_model(workspace, name)
    return JsonResponse({"registered_model": convert.registered_model(model)})


@router.delete(M + "/delete")
def delete_model(workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    registry.delete_model(workspace, msg.need("name"))
    return JsonResponse({})


@router.api_route(M + "/search", methods=["GET", "POST"])
def search_models(workspace: Readable, msg: Msg, registry: Registry) -> JsonResponse:
    models, token = registry.search_models(
        workspace,
        parse_filter(msg.text("filter"), REGISTERED_MODELS),
        attribute_order(msg.repeated("order_by"), REGISTERED_MODELS),
        max_results(msg, 100, MAX_MODELS_PAGE),
        msg.text("page_token"),
    )
    return _paged("registered_models", [convert.registered_model(m) for m in models], token)


@router.api_route(M + "/get-latest-versions", methods=["POST", "GET"])
def latest_versions(workspace: Readable, msg: Msg, registry: Registry) -> JsonResponse:
    stages = [str(s) for s in msg.repeated("stages")]
    found = registry.latest_versions(workspace, msg.need("name"), stages)
    return JsonResponse({"model_versions": [convert.model_version(v) for v in found]})


@router.post(M + "/set-tag")
def set_model_tag(workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    registry.set_model_tag(workspace, msg.need("name"), msg.need("key"), msg.text("value") or "")
    return JsonResponse({})


@router.delete(M + "/delete-tag")
def delete_model_tag(workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    registry.delete_model_tag(workspace, msg.need("name"), msg.need("key"))
    return JsonResponse({})


@router.post(M + "/alias")
def set_alias(workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    registry.set_alias(workspace, msg.need("name"), msg.need("alias"), msg.need("version"))
    return JsonResponse({})


@router.delete(M + "/alias")
def delete_alias(workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    registry.delete_alias(workspace, msg.need("name"), msg.need("alias"))
    return JsonResponse({})


@router.get(M + "/alias")
def get_by_alias(workspace: Readable, msg: Msg, registry: Registry) -> JsonResponse:
    version = registry.version_by_alias(workspace, msg.need("name"), msg.need("alias"))
    return JsonResponse({"model_version": convert.model_version(version)})


# --------------------------------------------------------------- versions
@router.post(V + "/create")
def create_version(workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    version = registry.create_version(
        workspace,
        msg.need("name"),
        source=msg.text("source") or "",
        run_id=msg.text("run_id"),
        logged_model_id=msg.text("model_id"),
        description=msg.text("description") or "",
        tags=msg.key_values("tags"),
        run_link=msg.text("run_link") or "",
    )
    if version.logged_model_id:
        _note_version(registry, workspace, version.logged_model_id, version.name, version.version)
    return JsonResponse({"model_version": convert.model_version(version)})


def _note_version(
    registry: RegistryService, workspace: str, model_id: str, name: str, number: int
) -> None:
    """MLflow lists a logged model's registered versions in its ``mlflow.modelVersions`` tag
    (clients read it): the new version is added there."""
    try:
        model = registry.get_logged_model(workspace, model_id)
    except NotFound:
        return  # a deleted logged model keeps its tags as they were
    noted = json.loads(model.tags.get(MODEL_VERSIONS_TAG) or "[]")
    noted.append({"name": name, "version": int(number)})
    registry.set_logged_model_tags(workspace, model_id, {MODEL_VERSIONS_TAG: json.dumps(noted)})


@router.get(V + "/get")
def get_version(workspace: Readable, msg: Msg, registry: Registry) -> JsonResponse:
    version = registry.get_version(workspace, msg.need("name"), msg.need("version"))
    return JsonResponse({"model_version": convert.model_version(version)})


@router.patch(V + "/update")
def update_version(workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    name, number = msg.need("name"), msg.need("version")
    if "description" in msg:
        found = registry.update_version(workspace, name, number, msg.text("description") or "")
    else:
        found = registry.get_version(workspace, name, number)
    return JsonResponse({"model_version": convert.model_version(found)})


@router.post(V + "/transition-stage")
def transition_stage(workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    found = registry.transition_stage(
        workspace,
        msg.need("name"),
        msg.need("version"),
        msg.need("stage"),
        msg.flag("archive_existing_versions"),
    )
    return JsonResponse({"model_version": convert.model_version(found)})


@router.delete(V + "/delete")
def delete_version(workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    registry.delete_version(workspace, msg.need("name"), msg.need("version"))
    return JsonResponse({})


@router.api_route(V + "/search", methods=["GET", "POST"])
def search_versions(workspace: Readable, msg: Msg, registry: Registry) -> JsonResponse:
    # MLflow's default order: the most recently updated first.
    orders = attribute_order(msg.repeated("order_by"), MODEL_VERSIONS) or list(VERSIONS_ORDER)
    found, token = registry.search_versions(
        workspace,
        parse_filter(msg.text("filter"), MODEL_VERSIONS),
        orders,
        max_results(msg, 10_000, MAX_VERSIONS_PAGE),
        msg.text("page_token"),
    )
    return _paged("model_versions", [convert.model_version(v) for v in found], token)


@router.get(V + "/get-download-uri")
def download_uri(workspace: Readable, msg: Msg, registry: Registry) -> JsonResponse:
    where, own = registry.download_location(workspace, msg.need("name"), msg.need("version"))
    return JsonResponse({"artifact_uri": f"mlflow-artifacts:/{where}" if own else where})


@router.post(V + "/set-tag")
def set_version_tag(workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    registry.set_version_tag(
        workspace, msg.need("name"), msg.need("version"), msg.need("key"), msg.text("value") or ""
    )
    return JsonResponse({})


@router.delete(V + "/delete-tag")
def delete_version_tag(workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    registry.delete_version_tag(workspace, msg.need("name"), msg.need("version"), msg.need("key"))
    return JsonResponse({})
