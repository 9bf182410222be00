"""``/api/v1/workspaces/{workspace}/runs/{run_id}/...``: ingest batches and read metrics.

A batch is written in one transaction; a batch id seen before is acknowledged
without writing again, so a client may retry a batch it is unsure of.
NaN and infinities travel as the strings "NaN", "Infinity" and "-Infinity".
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, WithJsonSchema

from cumulo.core.errors import InvalidInput
from cumulo.server.api.common import MAX_INT64, MIN_INT64, WS, Readable, Tracking, Writable
from cumulo.server.responses import JsonResponse, encode_series, encode_values

router = APIRouter(prefix=WS + "/runs/{run_id}", tags=["metrics"])

RunId = Annotated[str, Path(max_length=64)]
Millis = Annotated[int, Field(ge=0, le=MAX_INT64)]
# Values, steps and times are checked by the tracking service itself, so a
# batch is judged the same over HTTP as in-process (no coercion of true to 1).
_Value = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number"},
                {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]},
            ]
        }
    ),
]
_Step = Annotated[Any, WithJsonSchema({"type": ["integer", "null"]})]
_Time = Annotated[Any, WithJsonSchema({"type": ["integer", "null"], "minimum": 0})]
# (key, value, step, timestamp_ms); step and timestamp may be null (step 0, now).
MetricPoint = tuple[Annotated[str, Field(max_length=1000)], _Value, _Step, _Time]
MAX_BATCH_ITEMS = 100_000


class RecordIn(BaseModel):
    name: str = Field(max_length=1000)
    kind: str = Field(max_length=16)
    value: Any = None
    timestamp: Millis | None = None
    description: str = Field(default="", max_length=100_000)


class LogBatch(BaseModel):
    metrics: list[MetricPoint] = Field(default_factory=list, max_length=MAX_BATCH_ITEMS)
    params: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None
    records: list[RecordIn] = Field(default_factory=list, max_length=MAX_BATCH_ITEMS)
    batch_id: str | None = Field(default=None, max_length=64)


@router.post("/log-batch")
def log_batch(
    body: LogBatch, workspace: Writable, run_id: RunId, service: Tracking
) -> JsonResponse:
    """Write metrics, params, tags and records at once; all or nothing.

    Answers ``{"written": false}`` for a ``batch_id`` already written (a retry).
    """
    for point in body.metrics:
        # Python numbers are unbounded; the store's 64-bit columns are not.
        for what, number in (("step", point[2]), ("timestamp", point[3])):
            if isinstance(number, (int, float)) and not MIN_INT64 <= number <= MAX_INT64:
                raise InvalidInput(f"The {what} {number} of metric {point[0]!r} is out of range.")
    written = service.log_batch(
        workspace,
        run_id,
        metrics=body.metrics,
        params=body.params,
        tags=body.tags,
        records=[r.model_dump() for r in body.records],
        batch_id=body.batch_id,
    )
    return JsonResponse({"written": written})


@router.get("/metrics/history")
def get_metric_history(
    workspace: Readable,
    run_id: RunId,
    service: Tracking,
    key: Annotated[str, Query(max_length=1000)],
    start_step: Annotated[int | None, Query(ge=MIN_INT64, le=MAX_INT64)] = None,
    end_step: Annotated[int | None, Query(ge=MIN_INT64, le=MAX_INT64)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
    limit: Annotated[int | None, Query(ge=0, le=MAX_INT64)] = None,
) -> JsonResponse:
    """One series in columns: ``{"step": [...], "timestamp": [...], "value": [...]}``."""
    series = service.get_metric_history(
        workspace, run_id, key, start_step=start_step, end_step=end_step, offset=offset, limit=limit
    )
    return JsonResponse(encode_series(series))


@router.get("/metrics")
def get_run_metrics(workspace: Readable, run_id: RunId, service: Tracking) -> JsonResponse:
    """Every series of the run in columns, and its list/row/table/image records."""
    data = service.get_run_metrics(workspace, run_id)
    return JsonResponse(
        {
            "series": {k: encode_series(v) for k, v in data["series"].items()},
            "records": data["records"],
        }
    )


@router.get("/metrics/chart")
def get_metric_chart(
    workspace: Readable,
    run_id: RunId,
    service: Tracking,
    key: Annotated[str, Query(max_length=1000)],
    axis: Literal["step", "timestamp"] = "step",
    start: Annotated[int | None, Query(ge=MIN_INT64, le=MAX_INT64)] = None,
    end: Annotated[int | None, Query(ge=MIN_INT64, le=MAX_INT64)] = None,
    points: Annotated[int, Query(ge=16, le=20_000)] = 2000,
) -> JsonResponse:
    """A series downsampled for a chart of about ``points`` points (NaN as null)."""
    chart = service.get_metric_chart(
        workspace, run_id, key, axis=axis, start=start, end=end, points=points
    )
    chart["y"] = [v if v is None else encode_values([v])[0] for v in chart["y"]]
    return JsonResponse(chart)


@router.get("/records")
def get_run_records(workspace: Readable, run_id: RunId, service: Tracking) -> JsonResponse:
    """The run's list, row, table and image records, in the order they were logged."""
    return JsonResponse(
        {"records": [r.to_dict() for r in service.get_run_records(workspace, run_id)]}
    )
