"""What every MLflow-compatible route shares: MLflow's error codes, request parsing
as MLflow's server does it, the workspace a request addresses, and access checks.

MLflow clients send GET parameters in the query string (a repeated field as a
repeated key) and everything else as a JSON body, DELETE included; int64 values
arrive as numbers or as strings, doubles may be "NaN"/"Infinity"/"-Infinity".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from cumulo.core.entities import decode_float
from cumulo.core.errors import HTTP_STATUS, CumuloError, InvalidInput
from cumulo.core.settings import DEFAULT_WORKSPACE
from cumulo.core.validation import fits_int64
from cumulo.server.access import Access, declares
from cumulo.server.auth import require, token_auth
from cumulo.server.front import client_path
from cumulo.server.responses import JsonResponse
from cumulo.services.registry import RegistryService
from cumulo.services.tracking import TrackingService

# Cumulo error code -> (MLflow error code, HTTP status). MLflow answers 400 for
# "already exists" and for changed params or writes to deleted runs; its client
# retries 5xx answers for minutes, so nothing a caller can fix may be a 5xx. A race
# the store lost (a serialization failure, a run number taken at the same moment) is
# Unavailable, so the client's retry makes it; RESOURCE_CONFLICT stays a caller's 400.
_MLFLOW_ERRORS: dict[str, tuple[str, int]] = {
    "INVALID_PARAMETER_VALUE": ("INVALID_PARAMETER_VALUE", 400),
    "INVALID_PATH": ("INVALID_PARAMETER_VALUE", 400),
    "PAYLOAD_TOO_LARGE": ("INVALID_PARAMETER_VALUE", 400),
    "RESOURCE_DOES_NOT_EXIST": ("RESOURCE_DOES_NOT_EXIST", 404),
    "RESOURCE_ALREADY_EXISTS": ("RESOURCE_ALREADY_EXISTS", 400),
    "RESOURCE_CONFLICT": ("INVALID_PARAMETER_VALUE", 400),
    "INVALID_STATE": ("INVALID_PARAMETER_VALUE", 400),
    "UNAUTHENTICATED": ("UNAUTHENTICATED", 401),
    "PERMISSION_DENIED": ("PERMISSION_DENIED", 403),
    "TEMPORARILY_UNAVAILABLE": ("TEMPORARILY_UNAVAILABLE", 503),
    "CONFIG_ERROR": ("INVALID_PARAMETER_VALUE", 400),
}


# MLflow's wording of the errors its clients and tests match on (``Run .+ not found``,
# ``Registered Model .+ already exists``): Cumulo's message for the same case -> MLflow's.
_MLFLOW_WORDING: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Run '([^']*)' does not exist in this workspace\."), "Run with id={0} not found"),
    (
        re.compile(
            r"Run (\S+) is deleted; restore it before logging to it \(it must be active\)\."
        ),
        "The run {0} must be in the 'active' state. Current state is deleted.",
    ),
    (
        re.compile(r"Registered model '([^']*)' does not exist in this workspace\."),
        "Registered Model with name={0} not found",
    ),
    (
        re.compile(r"Registered model '([^']*)' already exists\."),
        "Registered Model (name={0}) already exists.",
    ),
    (
        re.compile(r"Logged model '([^']*)' does not exist in this workspace\."),
        "Logged model with ID '{0}' not found.",
    ),
    (re.compile(r"Tag '([^']*)' does not exist\."), "No tag with key '{0}' found."),
    (
        re.compile(r"Model '([^']*)' has no version (\d+)\."),
        "Model Version (name={0}, version={1}) not found",
    ),
    (
        re.compile(r"A model version is a whole number, got '([^']*)'\."),
        "Parameter 'version' must be an integer, got '{0}'.",
    ),
)


def mlflow_message(message: str) -> str:
    for pattern, wording in _MLFLOW_WORDING:
        found = pattern.fullmatch(message)
        if found:
            return wording.format(*found.groups())
    return message


def mlflow_error(exc: CumuloError) -> JsonResponse:
    code, status = _MLFLOW_ERRORS.get(exc.code, (exc.code, HTTP_STATUS.get(exc.code, 500)))
    return JsonResponse(
        {"error_code": code, "message": mlflow_message(exc.message)}, status_code=status
    )


def endpoint_not_found(request: Request) -> JsonResponse:
    path = client_path(request.scope)  # an /ajax-api/ path the front rewrote is named as sent
    return JsonResponse(
        {
            "error_code": "ENDPOINT_NOT_FOUND",
            "message": f"This server does not implement {request.method} {path}.",
        },
        status_code=404,
    )


class MlflowRoute(APIRoute):
    """A route whose errors answer in MLflow's codes and statuses (the native API keeps its own)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except CumuloError as exc:
                return mlflow_error(exc)
            except RequestValidationError as exc:
                return mlflow_error(InvalidInput(f"Invalid request: {exc.errors()}"))

        return handle


# ------------------------------------------------------------------ requests
class Message:
    """A request's fields, read leniently as MLflow's server reads its protos."""

    def __init__(self, data: dict[str, Any], size: int = 0, prefix: str = "") -> None:
        self.data = data
        self.size = size  # bytes of the JSON body
        self.prefix = prefix  # where a nested message sits ("metrics[0].")

    def __contains__(self, name: str) -> bool:
        return self.data.get(name) is not None

    def raw(self, name: str) -> Any:
        return self.data.get(name)

    def _missing(self, name: str) -> InvalidInput:
        return InvalidInput(f"Missing value for required parameter '{self.prefix}{name}'.")

    def text(self, name: str, required: bool = False, default: str | None = None) -> str | None:
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                raise self._missing(name)
            return default
        if not isinstance(value, str):
            raise invalid_value(name, value)
        return value

    def need(self, name: str) -> str:
        value = self.text(name, required=True)
        assert value is not None
        return value

    def integer(self, name: str, default: int | None = None, required: bool = False) -> int | None:
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                raise self._missing(name)
            return default
        if isinstance(value, bool):
            raise invalid_value(name, value)
        try:
            number = int(value) if not isinstance(value, float) or value.is_integer() else None
        except (TypeError, ValueError):
            number = None
        # A float is judged as sent: the parser turned an integer below -2**63 into one.
        if number is None or not fits_int64(value if isinstance(value, float) else number):
            raise invalid_value(name, value, "it must be a 64-bit integer.")
        return number

    def number(self, name: str, required: bool = False) -> float | None:
        value = self.data.get(name)
        if value is None:
            if required:
                raise self._missing(name)
            return None
        if isinstance(value, bool):
            raise invalid_value(name, value)
        try:
            return decode_float(value)
        except (TypeError, ValueError):
            raise invalid_value(name, value, "it must be a number.") from None

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise invalid_value(name, value, "it must be true or false.")

    def repeated(self, name: str) -> list[Any]:
        """A repeated field; a single value (one query key) counts as a list of one."""
        value = self.data.get(name)
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    def objects(self, name: str) -> list[dict[str, Any]]:
        """A repeated message field: a JSON array of objects (one object counts as one)."""
        value = self.data.get(name)
        items = self.repeated(name)
        if not all(isinstance(item, dict) for item in items):
            raise invalid_value(name, value)
        return items

    def key_values(self, name: str) -> dict[str, str]:
        """``[{"key": k, "value": v}, ...]`` (tags, params) as a dict; later items win."""
        out: dict[str, str] = {}
        for item in self.objects(name):
            key = item.get("key")
            if not isinstance(key, str) or not key:
                raise InvalidInput(f"Each item of '{name}' needs a non-empty string 'key'.")
            out[key] = value_text(item.get("value"), f"{name.rstrip('s')} {key!r}")
        return out


def invalid_value(name: str, value: Any, hint: str | None = None) -> InvalidInput:
    """MLflow's wording for a parameter of the wrong type or form (clients match on it):
    ``Invalid value 31 for parameter 'run_id' supplied: ...``, the value as JSON."""
    try:
        shown = json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        shown = repr(value)
    why = hint or f"Hint: Value was of type '{type(value).__name__}'."
    return InvalidInput(
        f"Invalid value {shown} for parameter '{name}' supplied: {why} "
        "See the API docs for more information about request parameters."
    )


def value_text(value: Any, what: str) -> str:
    """A param or tag value as text: strings as sent, numbers and booleans as the MLflow
    client writes them; JSON objects and arrays are refused, never stored as Python text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    kind = "an object" if isinstance(value, dict) else "an array"
    raise InvalidInput(f"The value of {what} is {kind}; it must be a string (or a number).")


async def read_message(request: Request) -> Message:
    data: dict[str, Any] = {}
    size = 0
    for key in request.query_params:
        values = request.query_params.getlist(key)
        data[key] = values if len(values) > 1 else values[0]
    if request.method != "GET":
        body = await request.body()
        size = len(body)
        if body.strip():
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"The request body is not valid JSON: {exc}.") from None
            if not isinstance(parsed, dict):
                raise InvalidInput("The request body must be a JSON object.")
            data.update(parsed)
    return Message(data, size)


Msg = Annotated[Message, Depends(read_message)]


# ---------------------------------------------------------------- workspaces
# The MLflow routes of workspace <name> (the root paths serve the default one).
WORKSPACE_PREFIX = "/ws/{workspace}"


def workspace_of(request: Request) -> str:
    """``/ws/<name>/...`` addresses that workspace; the root paths the default one."""
    return str(request.path_params.get("workspace") or DEFAULT_WORKSPACE)


async def check_workspace(request: Request, write: bool, inline: bool = False) -> str:
    """The request's workspace, once its token may read (or ``write``) it; ``inline``:
    the token is looked up on the event loop rather than in a worker thread."""
    workspace = workspace_of(request)
    if token_auth(request):
        if inline:
            require(request, workspace, write)
        else:
            await run_in_threadpool(require, request, workspace, write)
    return workspace


@declares(Access.READ)
async def read_checked(request: Request) -> str:
    return await check_workspace(request, write=False)


@declares(Access.WRITE)
async def write_checked(request: Request) -> str:
    return await check_workspace(request, write=True)


# A route takes one of these as its ``workspace`` argument: checked, then passed on.
Readable = Annotated[str, Depends(read_checked)]
Writable = Annotated[str, Depends(write_checked)]


# Async so that FastAPI does not hand these to a worker thread (one hop per request saved).
async def tracking_service(request: Request) -> TrackingService:
    service: TrackingService = request.app.state.services.tracking
    return service


async def registry_service(request: Request) -> RegistryService:
    service: RegistryService = request.app.state.services.registry
    return service


Tracking = Annotated[TrackingService, Depends(tracking_service)]
Registry = Annotated[RegistryService, Depends(registry_service)]


# --------------------------------------------------------------------- wire
def key_value_list(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in values.items()]


def wire_float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def max_results(msg: Message, default: int, limit: int) -> int:
    value = msg.integer("max_results", default)
    assert value is not None
    if not 0 < value <= limit:
        raise invalid_value("max_results", value, f"it must be between 1 and {limit}.")
    return value
