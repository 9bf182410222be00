"""MLflow's run and metric endpoints over Cumulo runs (``/api/2.0/mlflow/runs/...``).

A run created here is an ordinary Cumulo run and the reverse: the SDK, the CLI
and the studio see the same rows.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import APIRouter, Request

from cumulo.core import validation
from cumulo.core.entities import DatasetInput, ModelMetric, RunInfo, RunLineage
from cumulo.core.errors import InvalidInput, NotFound, PayloadTooLarge
from cumulo.core.names import run_display_name
from cumulo.core.pages import decode_token, encode_token
from cumulo.core.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH
from cumulo.server.mlflow import convert
from cumulo.server.mlflow.common import (
    Message,
    MlflowRoute,
    Msg,
    Readable,
    Registry,
    Tracking,
    Writable,
    invalid_value,
    max_results,
    value_text,
    wire_float,
)
from cumulo.server.mlflow.direct import point_route
from cumulo.server.responses import JsonResponse
from cumulo.services.registry import RegistryService
from cumulo.services.tracking import TrackingService

P = "/api/2.0/mlflow"
RUN_NAME_TAG = "mlflow.runName"
PARENT_TAG = "mlflow.parentRunId"
MAX_ENTITIES_PER_BATCH = 1000
MAX_BATCH_BYTES = 1_000_000
MAX_RUNS_PAGE = 50_000
HISTORY_PAGE = 25_000
VIEWS = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": "all"}

router = APIRouter(route_class=MlflowRoute, include_in_schema=False)


def _run_id(msg: Message) -> str:
    value = msg.text("run_id") or msg.text("run_uuid")
    if not value:
        raise InvalidInput("Missing value for required parameter 'run_id'.")
    return value


def _render(
    request: Request,
    tracking: TrackingService,
    registry: RegistryService,
    workspace: str,
    runs: list[RunInfo],
) -> list[dict[str, Any]]:
    default_id = convert.default_experiment_id(request, tracking, workspace)
    lineage = registry.lineage(workspace, [r.id for r in runs])
    return [convert.run(r, default_id, lineage.get(r.id)) for r in runs]


def _parent(tracking: TrackingService, workspace: str, parent_id: str | None) -> str | None:
    """The parent a ``mlflow.parentRunId`` tag names, when it is a run of this workspace.

    MLflow keeps the tag as written without looking the run up (a parent may live on
    another server, or be a placeholder): such a tag is kept, only the link is not made.
    """
    if not parent_id:
        return None
    try:
        return tracking.get_run(workspace, parent_id).id
    except NotFound:
        return None


# ------------------------------------------------------------------- runs
@router.post(P + "/runs/create")
@point_route
def create(request: Request, workspace: Writable, msg: Msg, tracking: Tracking) -> JsonResponse:
    exp_id = convert.experiment_id_in(request, tracking, workspace, msg.raw("experiment_id"))
    tags = msg.key_values("tags")
    name = msg.text("run_name") or tags.get(RUN_NAME_TAG) or run_display_name()
    tags[RUN_NAME_TAG] = name  # kept as a tag too, so filters on it work as in MLflow
    run = tracking.create_run(
        workspace,
        exp_id,
        display_name=name,
        parent_id=_parent(tracking, workspace, tags.get(PARENT_TAG)),
        tags=tags,
        user=msg.text("user_id") or tags.get("mlflow.user") or "",
        start_time=msg.integer("start_time"),
    )
    # A new run has read and produced nothing yet: no lineage to look up.
    default_id = convert.default_experiment_id(request, tracking, workspace)
    return JsonResponse({"run": convert.run(run, default_id, RunLineage(run.id))})


@router.get(P + "/runs/get")
@point_route
def get(
    request: Request, workspace: Readable, msg: Msg, tracking: Tracking, registry: Registry
) -> JsonResponse:
    with tracking.reading():  # the run and its lineage: one read transaction
        run = tracking.get_run(workspace, _run_id(msg))
        rendered = _render(request, tracking, registry, workspace, [run])[0]
    return JsonResponse({"run": rendered})


@router.post(P + "/runs/update")
@point_route
def update(request: Request, workspace: Writable, msg: Msg, tracking: Tracking) -> JsonResponse:
    run_id = _run_id(msg)
    name = msg.text("run_name")
    if name:
        tracking.update_run(workspace, run_id, display_name=name)
        tracking.set_tags(workspace, run_id, {RUN_NAME_TAG: name})
    status = msg.text("status")
    if status:
        cumulo_status = convert.run_status_in(status)
        end = msg.integer("end_time") if cumulo_status != "Running" else None
        run = tracking.set_run_status(workspace, run_id, cumulo_status, at=end)
    else:
        run = tracking.get_run(workspace, run_id)
    default_id = convert.default_experiment_id(request, tracking, workspace)
    return JsonResponse({"run_info": convert.run_info(run, default_id)})


@router.post(P + "/runs/delete")
@point_route
def delete(workspace: Writable, msg: Msg, tracking: Tracking) -> JsonResponse:
    tracking.update_run(workspace, _run_id(msg), deleted=True)
    return JsonResponse({})


@router.post(P + "/runs/restore")
@point_route
def restore(workspace: Writable, msg: Msg, tracking: Tracking) -> JsonResponse:
    tracking.update_run(workspace, _run_id(msg), deleted=False)
    return JsonResponse({})


@router.api_route(P + "/runs/search", methods=["POST", "GET"])
def search(
    request: Request, workspace: Readable, msg: Msg, tracking: Tracking, registry: Registry
) -> JsonResponse:
    view = VIEWS.get((msg.text("run_view_type") or "ACTIVE_ONLY").upper())
    if view is None:
        raise InvalidInput(f"run_view_type must be one of {', '.join(VIEWS)}.")
    ids = msg.repeated("experiment_ids")
    with tracking.reading():  # the runs and their lineage: one read transaction
        page = tracking.search_runs(
            workspace,
            [convert.experiment_id_in(request, tracking, workspace, i) for i in ids]
            if ids
            else None,
            filter=msg.text("filter"),
            order_by=[str(o) for o in msg.repeated("order_by")],
            max_results=max_results(msg, 1000, MAX_RUNS_PAGE),
            page_token=msg.text("page_token"),
            view=view,
        )
        runs = _render(request, tracking, registry, workspace, page.runs)
    body: dict[str, Any] = {"runs": runs}
    if page.next_page_token:
        body["next_page_token"] = page.next_page_token
    return JsonResponse(body)


# ---------------------------------------------------------------- logging
def _point(item: dict[str, Any], index: int | None = None) -> tuple[str, float, int, int]:
    """``(key, value, step, timestamp)`` of a wire metric, checked before any lookup.

    The hot path of ingestion: a metric of plain numbers passes straight through; any
    other is checked field by field in MLflow's order and words (strings such as int64
    as text, "NaN" and "Infinity" are converted). ``index``: the item's place in a batch.
    """
    key, value, ts = item.get("key"), item.get("value"), item.get("timestamp")
    step = item.get("step", 0)
    if type(key) is str and key and type(value) is float and type(ts) is int and type(step) is int:
        return key, value, step, ts
    fields = Message(item, prefix="" if index is None else f"metrics[{index}].")
    key = fields.need("key")
    value = fields.number("value", required=True)
    ts = fields.integer("timestamp", required=True)
    step = fields.integer("step", 0)
    assert value is not None and ts is not None and step is not None  # required, defaulted
    return key, value, step, ts


def _model_metrics(
    run_id: str, items: list[dict[str, Any]], points: list[tuple[str, float, int, int]]
) -> dict[str, list[ModelMetric]]:
    by_model: dict[str, list[ModelMetric]] = {}
    for item, (key, value, step, ts) in zip(items, points, strict=True):
        model_id = item.get("model_id")
        if model_id:
            by_model.setdefault(str(model_id), []).append(
                ModelMetric(
                    key,
                    value,
                    step,
                    ts,
                    run_id=run_id,
                    dataset_name=item.get("dataset_name") or None,
                    dataset_digest=item.get("dataset_digest") or None,
                )
            )
    return by_model


def _log_metrics(
    tracking: TrackingService,
    registry: RegistryService,
    workspace: str,
    run_id: str,
    items: list[dict[str, Any]],
    points: list[tuple[str, float, int, int]],
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """Log ``items``, read as ``points`` by ``_point`` before any lookup."""
    run_name = _run_name(tags)  # checked before anything is written
    by_model = _model_metrics(run_id, items, points)
    if by_model:
        # MLflow's log_model logs a run's metrics again with the new model's id: keep
        # the run's history free of those repeats (MLflow's store drops them as well).
        points = _without_repeats(tracking, workspace, run_id, points, items)
    tracking.log_batch(workspace, run_id, metrics=points, params=params, tags=tags)
    for model_id, metrics in by_model.items():
        registry.log_logged_model_metrics(workspace, model_id, metrics)
    if run_name:
        tracking.update_run(workspace, run_id, display_name=run_name)


def _run_name(tags: dict[str, str] | None) -> str | None:
    """The run's new display name from its ``mlflow.runName`` tag, checked."""
    return validation.display_name((tags or {}).get(RUN_NAME_TAG) or None)


def _without_repeats(
    tracking: TrackingService,
    workspace: str,
    run_id: str,
    points: list[tuple[str, float, int, int]],
    items: list[dict[str, Any]],
) -> list[tuple[str, float, int, int]]:
    known: dict[tuple[str, int], set[tuple[int, Any]]] = {}
    out = []
    for point, item in zip(points, items, strict=True):
        key, value, step, ts = point
        if item.get("model_id"):
            if (key, step) not in known:
                h = tracking.get_metric_history(
                    workspace, run_id, key, start_step=step, end_step=step
                )
                known[(key, step)] = {
                    (t, "nan" if math.isnan(v) else v)
                    for t, v in zip(h["timestamp"], h["value"], strict=True)
                }
            if (ts, "nan" if math.isnan(value) else value) in known[(key, step)]:
                continue
        out.append(point)
    return out


@router.post(P + "/runs/log-metric")
@point_route
def log_metric(
    workspace: Writable, msg: Msg, tracking: Tracking, registry: Registry
) -> JsonResponse:
    run_id = _run_id(msg)
    point = _point(msg.data)
    _log_metrics(tracking, registry, workspace, run_id, [msg.data], [point])
    return JsonResponse({})


@router.post(P + "/runs/log-parameter")
@point_route
def log_parameter(workspace: Writable, msg: Msg, tracking: Tracking) -> JsonResponse:
    run_id, key = _run_id(msg), msg.need("key")
    value = value_text(msg.raw("value"), f"param {key!r}")
    tracking.log_batch(workspace, run_id, params={key: value})
    return JsonResponse({})


@router.post(P + "/runs/log-batch")
@point_route
def log_batch(
    workspace: Writable, msg: Msg, tracking: Tracking, registry: Registry
) -> JsonResponse:
    run_id = _run_id(msg)
    if msg.size > MAX_BATCH_BYTES:
        raise PayloadTooLarge(
            f"The batch request is {msg.size} bytes; the limit is {MAX_BATCH_BYTES} bytes."
        )
    metrics, params, tags = msg.objects("metrics"), msg.objects("params"), msg.objects("tags")
    if len(metrics) > MAX_METRICS_PER_BATCH:
        raise InvalidInput(
            f"A batch logging request can contain at most {MAX_METRICS_PER_BATCH} metrics; "
            f"got {len(metrics)}. Split it into several batches."
        )
    for what, items in (("params", params), ("tags", tags)):
        if len(items) > MAX_PARAMS_TAGS_PER_BATCH:
            raise InvalidInput(
                f"A batch logging request can contain at most {MAX_PARAMS_TAGS_PER_BATCH} "
                f"{what}; got {len(items)}. Split it into several batches."
            )
    total = len(metrics) + len(params) + len(tags)
    if total > MAX_ENTITIES_PER_BATCH:
        raise InvalidInput(
            f"A batch logging request can contain at most {MAX_ENTITIES_PER_BATCH} metrics, "
            f"params and tags in total; got {total}."
        )
    param_values = msg.key_values("params")
    for item in params:  # the same key twice with different values is an error, as in MLflow
        if param_values.get(item.get("key", "")) != value_text(item.get("value"), "a param"):
            raise InvalidInput(
                f"Duplicate parameter key {item.get('key')!r} with different values in one batch."
            )
    tags_values = msg.key_values("tags")
    points = [_point(item, n) for n, item in enumerate(metrics)]
    _log_metrics(tracking, registry, workspace, run_id, metrics, points, param_values, tags_values)
    return JsonResponse({})


@router.post(P + "/runs/set-tag")
@point_route
def set_tag(workspace: Writable, msg: Msg, tracking: Tracking) -> JsonResponse:
    run_id, key = _run_id(msg), msg.need("key")
    value = msg.text("value", default="") or ""
    run_name = _run_name({key: value})  # checked before the tag is written
    tracking.set_tags(workspace, run_id, {key: value})
    if run_name:
        tracking.update_run(workspace, run_id, display_name=run_name)
    return JsonResponse({})


@router.post(P + "/runs/delete-tag")
@point_route
def delete_tag(workspace: Writable, msg: Msg, tracking: Tracking) -> JsonResponse:
    run_id, key = _run_id(msg), msg.need("key")
    run = tracking.get_run(workspace, run_id)
    if key not in run.tags and not run.deleted:
        raise NotFound(f"No tag with name: {key} in run with id {run_id}.")
    tracking.delete_tags(workspace, run_id, [key])  # refuses a deleted run, in its own words
    return JsonResponse({})


@router.post(P + "/runs/log-model")
def log_model(workspace: Writable, msg: Msg, tracking: Tracking) -> JsonResponse:
    """MLflow 2's model logging (Spark flavors still use it): kept as the run's history tag."""
    run_id = _run_id(msg)
    try:
        model = json.loads(msg.need("model_json"))
    except ValueError:
        raise InvalidInput("model_json is not valid JSON.") from None
    tags = tracking.get_run(workspace, run_id).tags
    history = json.loads(tags.get("mlflow.log-model.history", "[]"))
    history.append(model)
    tracking.set_tags(workspace, run_id, {"mlflow.log-model.history": json.dumps(history)})
    return JsonResponse({})


@router.post(P + "/runs/log-inputs")
def log_inputs(
    workspace: Writable, msg: Msg, tracking: Tracking, registry: Registry
) -> JsonResponse:
    run_id = _run_id(msg)
    datasets = []
    for item in msg.objects("datasets"):
        d = Message(item.get("dataset") or {})
        datasets.append(
            DatasetInput(
                name=d.need("name"),
                digest=d.need("digest"),
                source_type=d.text("source_type") or "",
                source=d.text("source") or "",
                schema=d.text("schema") or "",
                profile=d.text("profile") or "",
                tags=Message(item).key_values("tags"),
            )
        )
    models = [str(m.get("model_id")) for m in msg.objects("models") if m.get("model_id")]
    tracking.get_run(workspace, run_id)
    registry.log_inputs(workspace, run_id, datasets, models)
    return JsonResponse({})


@router.post(P + "/runs/outputs")
def log_outputs(workspace: Writable, msg: Msg, registry: Registry) -> JsonResponse:
    models = []
    for item in msg.objects("models"):
        m = Message(item)
        models.append((m.need("model_id"), m.integer("step", 0) or 0))
    registry.log_outputs(workspace, _run_id(msg), models)
    return JsonResponse({})


# ---------------------------------------------------------------- metrics
@router.get(P + "/metrics/get-history")
def get_history(workspace: Readable, msg: Msg, tracking: Tracking) -> JsonResponse:
    run_id, key = _run_id(msg), msg.need("metric_key")
    limit = msg.integer("max_results")
    if limit is not None and limit <= 0:
        raise invalid_value("max_results", limit, "it must be positive.")
    offset = decode_token(msg.text("page_token"))
    page = min(limit, HISTORY_PAGE) if limit is not None else None
    h = tracking.get_metric_history(
        workspace, run_id, key, offset=offset, limit=None if page is None else page + 1
    )
    steps, stamps, values = h["step"], h["timestamp"], h["value"]
    more = page is not None and len(steps) > page
    if more:
        steps, stamps, values = steps[:page], stamps[:page], values[:page]
    body: dict[str, Any] = {
        "metrics": [
            {"key": key, "value": wire_float(v), "timestamp": t, "step": s}
            for s, t, v in zip(steps, stamps, values, strict=True)
        ]
    }
    if more and page is not None:
        body["next_page_token"] = encode_token(offset + page)
    return JsonResponse(body)


MAX_BULK_RUNS = 100


@router.get(P + "/metrics/get-history-bulk")
def get_history_bulk(workspace: Readable, msg: Msg, tracking: Tracking) -> JsonResponse:
    """One metric's history for several runs (MLflow's web UI compares runs with it)."""
    run_ids = [str(r) for r in msg.repeated("run_id")]
    if not run_ids:
        raise InvalidInput("GetMetricHistoryBulk request must specify at least one run_id.")
    if len(run_ids) > MAX_BULK_RUNS:
        raise InvalidInput(
            f"GetMetricHistoryBulk request cannot specify more than {MAX_BULK_RUNS} run_ids. "
            f"Received {len(run_ids)} run_ids."
        )
    key = msg.text("metric_key")
    if key is None:
        raise InvalidInput("GetMetricHistoryBulk request must specify a metric_key.")
    limit = min(msg.integer("max_results", HISTORY_PAGE) or HISTORY_PAGE, HISTORY_PAGE)
    out: list[dict[str, Any]] = []
    for run_id in sorted(run_ids):  # MLflow's order: by run, then time, step and value
        h = tracking.get_metric_history(workspace, run_id, key, limit=limit)
        points = sorted(zip(h["timestamp"], h["step"], h["value"], strict=True))
        out += [
            {"key": key, "value": wire_float(v), "timestamp": t, "step": s, "run_id": run_id}
            for t, s, v in points
        ]
    return JsonResponse({"metrics": out[:limit]})


MAX_INTERVAL_RESULTS = 2500


@router.get(P + "/metrics/get-history-bulk-interval")
def get_history_bulk_interval(workspace: Readable, msg: Msg, tracking: Tracking) -> JsonResponse:
    """One metric of several runs, sampled to about ``max_results`` steps (MLflow's web UI
    draws the charts of the runs it compares with it); checked in MLflow's order and words."""
    run_ids = [str(r) for r in msg.repeated("run_ids")]
    if not run_ids:
        raise InvalidInput("Missing value for required parameter 'run_ids'.")
    if len(run_ids) > MAX_BULK_RUNS:
        raise InvalidInput(
            f"GetMetricHistoryBulkInterval request must specify at most {MAX_BULK_RUNS} "
            f"run_ids. Received {len(run_ids)} run_ids."
        )
    key = msg.need("metric_key")
    start, end = msg.integer("start_step"), msg.integer("end_step")
    limit = msg.integer("max_results", MAX_INTERVAL_RESULTS)
    assert limit is not None
    if not 1 <= limit <= MAX_INTERVAL_RESULTS:
        raise InvalidInput(f"max_results must be between 1 and {MAX_INTERVAL_RESULTS}.")
    if start is not None and end is not None and start > end:
        raise InvalidInput(
            "end_step must be greater than start_step. "
            f"Found start_step={start} and end_step={end}."
        )
    points = tracking.get_metric_history_interval(workspace, run_ids, key, limit, start, end)
    return JsonResponse(
        {
            "metrics": [
                {"key": key, "value": wire_float(v), "timestamp": t, "step": s, "run_id": run_id}
                for run_id, s, t, v in points
            ]
        }
    )
