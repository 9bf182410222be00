"""JSON responses encoded by orjson, and the wire form of floats JSON cannot carry.

(The errors the front and the middleware write straight to ASGI are ``cumulo.server.asgi``'s:
they need no web framework.)"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

import orjson
from starlette.responses import JSONResponse

from cumulo.core.entities import RunInfo, encode_float

log = logging.getLogger("cumulo.server")


class JsonResponse(JSONResponse):
    """A JSON response rendered by orjson (several times faster than the standard library)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def internal_error(exc: BaseException) -> JsonResponse:
    """The answer to a failure no handler expected: logged in full under an id the
    answer names; the client sees no stack trace."""
    error_id = uuid.uuid4().hex[:12]
    log.error("internal error %s", error_id, exc_info=exc)
    message = f"Internal server error (error id {error_id}); see the server log."
    return JsonResponse({"error_code": "INTERNAL_ERROR", "message": message}, status_code=500)


def encode_values(values: list[Any]) -> list[Any]:
    """A column of floats with NaN and infinities as "NaN"/"Infinity"/"-Infinity"."""
    if all(map(math.isfinite, values)):  # the common case: no copy
        return values
    return [encode_float(v) for v in values]


def encode_series(series: dict[str, list[Any]]) -> dict[str, list[Any]]:
    out = dict(series)
    if "value" in out:
        out["value"] = encode_values(out["value"])
    return out


def run_dict(run: RunInfo) -> dict[str, Any]:
    data = run.to_dict()
    for metric in data["metrics"].values():
        metric["value"] = encode_float(metric["value"])
    return data
