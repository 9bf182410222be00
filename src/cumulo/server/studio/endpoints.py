"""Online endpoints in the studio: deployments, traffic, a test form, snippets, charts, logs.

The test form is answered by the server: it sends the body to the endpoint's
router in this process with the endpoint's key (or the visitor's own token),
so the key never reaches a visitor who may not read it. Keys are shown (in
the consume snippets) only to those who may change the workspace, as the
API's ``/keys`` route does.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import PurePosixPath
from typing import Any

import httpx
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from cumulo.core.deployments import DeploymentInfo, EndpointInfo, scoring_path, swagger_path
from cumulo.core.errors import CumuloError, InvalidInput
from cumulo.server import auth
from cumulo.server.studio import runs, web
from cumulo.services.context import Services
from cumulo.services.deployments import DeploymentService
from cumulo.serving.openapi import deployment_schemas

router = APIRouter(route_class=web.PageRoute, include_in_schema=False, dependencies=[web.READ])
data_router = APIRouter(
    prefix=web.DATA_PREFIX,
    route_class=web.PageRoute,
    include_in_schema=False,
    dependencies=[web.READ],
)

MAX_TEST_BODY = 1024 * 1024  # what the test form sends at most
SHOWN_ANSWER = 200_000  # characters of an answer the page shows
CHART_MINUTES = (60, 360, 1440)
LOG_LINES = 500
REQUEST_ROWS = 50  # sampled requests the page lists
SHOWN_BODY = 300  # characters of a sampled body shown in the list
MAX_EXAMPLE_BYTES = 256 * 1024  # a logged input example larger than this is not prefilled
# MLflow saves the body for /invocations itself (newer versions), or the raw example.
_EXAMPLE_FILES = ("serving_input_example.json", "input_example.json")
_INPUT_FORMS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_WORST_FIRST = ("Failed", "Unhealthy", "Updating", "Creating")
# Frames of the scoring server itself (in this interpreter or in a deployment's environment).
_SERVER_FRAMES = "/cumulo/serving/"


def _api(request: Request) -> DeploymentService:
    return web.services(request).deployments


def writable(request: Request, ws: str) -> bool:
    """Whether the visitor may change ``ws`` (and so read its endpoint keys)."""
    try:
        web.guard(request, ws, write=True)
    except CumuloError:
        return False
    return True


def _as_seen_by(request: Request, ws: str, info: EndpointInfo) -> EndpointInfo:
    """The endpoint as the visitor may see it: where replicas run is for owners only."""
    try:
        auth.require(web.with_cookie_token(request), ws, True, manage=True)
    except CumuloError:
        return info.without_addresses()
    return info


def endpoint_state(info: EndpointInfo) -> str:
    """Healthy when every deployment is; else the worst deployment state."""
    states = {d.state for d in info.deployments}
    worst = next((s for s in _WORST_FIRST if s in states), None)
    return worst or ("Healthy" if states else "No deployments")


def base_url(request: Request) -> str:
    public = request.app.state.settings.public_url
    return str(public or request.base_url).rstrip("/")


def _ordered(info: EndpointInfo) -> list[DeploymentInfo]:
    """Deployments with the most traffic first, then by name."""
    return sorted(info.deployments, key=lambda d: (-info.traffic.get(d.name, 0), d.name))


def sample_body(dep: DeploymentInfo | None, model_example: Any = None) -> str:
    """A body to start the test form with, one the model accepts.

    In order: the deployment's sample input; the example its signature gives
    (a row of zeros for columns); the input example logged with an MLflow model
    (``model_example``, as read from its files); zeros shaped as its tensor input.
    """
    if dep is None:
        return "{}"
    request_schema, _ = deployment_schemas({**dep.spec, "kind": dep.kind})
    example = request_schema.get("example")
    if example is None and dep.kind == "mlflow":
        example = serving_example(model_example)
        if example is None:
            example = _tensor_example(dep.spec.get("signature"))
    return json.dumps(example, indent=2) if example is not None else "{}"


def serving_example(logged: Any) -> Any:
    """An MLflow input example (``input_example.json``) as an ``/invocations`` body."""
    if logged is None:
        return None
    if isinstance(logged, dict) and isinstance(logged.get("data"), list) and "columns" in logged:
        return {"dataframe_split": {"columns": logged["columns"], "data": logged["data"]}}
    if isinstance(logged, dict) and set(logged) & set(_INPUT_FORMS):
        return logged  # already a serving body (serving_input_example.json)
    if isinstance(logged, list) and logged and all(isinstance(r, dict) for r in logged):
        return {"dataframe_records": logged}
    return {"inputs": logged}


def _tensor_example(signature: Any) -> Any:
    """Zeros in the shape of a tensor signature's first input (-1 dimensions as 1)."""
    try:
        specs: Any = json.loads(signature["inputs"])
        tensor = specs[0]["tensor-spec"]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    zero: Any = 0 if "int" in str(tensor.get("dtype", "")) else 0.0
    for dim in reversed(tensor.get("shape") or [-1]):
        zero = [zero] * (dim if isinstance(dim, int) and dim > 0 else 1)
    return {"inputs": zero}


def _logged_example(services: Services, ws: str, dep: DeploymentInfo) -> Any:
    """The input example saved with the deployment's first model, if it has one."""
    if dep.kind != "mlflow" or not dep.models:
        return None
    name, version = dep.models[0]["name"], int(dep.models[0]["version"])
    try:
        found = services.registry.list_version_files(ws, name, version, recursive=True)
    except CumuloError:
        return None
    by_name = {PurePosixPath(f.path).name: f for f in found if not f.is_dir}
    for candidate in _EXAMPLE_FILES:
        info = by_name.get(candidate)
        if info is None or (info.size or 0) > MAX_EXAMPLE_BYTES:
            continue
        with services.registry.open_version_file(ws, name, version, info.path) as fh:
            try:
                logged = json.loads(fh.read())
            except ValueError:
                continue
        return logged
    return None


def snippets(
    base: str, ws: str, name: str, auth: str, key: str | None, body: str, server_auth: bool
) -> dict[str, str]:
    """How a client calls the endpoint: curl, Python (requests) and the Cumulo SDK."""
    url = base + scoring_path(ws, name)
    compact = json.dumps(json.loads(body)) if _is_json(body) else body
    literal = repr(json.loads(body)) if _is_json(body) else repr(body)  # Python, not JSON
    secret = key or ("<your-cumulo-token>" if auth == "token" else "<endpoint-key>")
    header = "" if auth == "none" else f" \\\n  -H 'Authorization: Bearer {secret}'"
    shell_body = compact.replace("'", "'\\''")
    curl = (
        f"curl -X POST '{url}'{header} \\\n"
        f"  -H 'Content-Type: application/json' \\\n  -d '{shell_body}'"
    )
    auth_line = "" if auth == "none" else f'    headers={{"Authorization": "Bearer {secret}"}},\n'
    python = (
        "import requests\n\n"
        f"body = {literal}\n"
        f'response = requests.post(\n    "{url}",\n    json=body,\n{auth_line}    timeout=60,\n)\n'
        "response.raise_for_status()\n"
        "print(response.json())"
    )
    # The SDK reads the key itself, with the caller's workspace token when the server asks one.
    token = ', token="<your-cumulo-token>"' if server_auth else ""
    sdk = (
        "from cumulo import Endpoint, Workspace\n\n"
        f'ws = Workspace.connect("{base}", "{ws}"{token})\n'
        f'print(Endpoint(ws, "{name}").run({literal}))'
    )
    return {"curl": curl, "python": python, "sdk": sdk}


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _context(request: Request, ws: str, info: EndpointInfo) -> dict[str, Any]:
    deployments = _ordered(info)
    may_write = writable(request, ws)
    key = None
    if may_write and info.auth_mode == "key":
        key = _api(request).get_keys(ws, info.name)["primary"]
    base = base_url(request)
    services = web.services(request)
    samples = {d.name: sample_body(d, _logged_example(services, ws, d)) for d in deployments}
    first = samples[deployments[0].name] if deployments else "{}"
    return dict(
        workspace=ws,
        endpoint=info,
        deployments=deployments,
        state=endpoint_state(info),
        scoring_uri=base + scoring_path(ws, info.name),
        swagger_uri=base + swagger_path(ws, info.name),
        may_write=may_write,
        may_test=may_write or info.auth_mode != "key",
        samples=samples,
        sample=first,
        snippets=snippets(base, ws, info.name, info.auth_mode, key, first, web.auth_on(request)),
        minutes=CHART_MINUTES,
        frames=_frames,
        oob=False,
        nav="endpoints",
        title=f"{info.name} · endpoints · {ws}",
    )


def _frames(dep: DeploymentInfo) -> list[dict[str, Any]]:
    """The frames of a failed ``init()`` in the user's code (the scoring server's are noise)."""
    frames = runs.failing_lines(str((dep.error or {}).get("traceback") or ""))
    own = [f for f in frames if _SERVER_FRAMES not in f["file"].replace("\\", "/")]
    return own or frames


# -------------------------------------------------------------------- pages
@router.get("/ws/{ws}/endpoints", response_class=HTMLResponse)
def endpoints(request: Request, ws: str) -> Response:
    web.services(request).tracking.get_workspace(ws)
    infos = sorted(_api(request).list_endpoints(ws), key=lambda e: e.name)
    rows = [{"info": e, "state": endpoint_state(e), "deployments": _ordered(e)} for e in infos]
    return web.render(
        request,
        "endpoints.html",
        workspace=ws,
        rows=rows,
        base=base_url(request),
        nav="endpoints",
        title=f"Endpoints · {ws}",
    )


@router.get("/ws/{ws}/endpoints/{name}", response_class=HTMLResponse)
def endpoint(request: Request, ws: str, name: str, message: str = "") -> Response:
    info = _as_seen_by(request, ws, _api(request).get_endpoint(ws, name))
    return web.render(request, "endpoint.html", message=message, **_context(request, ws, info))


@router.get("/ws/{ws}/endpoints/{name}/deployments", response_class=HTMLResponse)
def deployments(request: Request, ws: str, name: str) -> Response:
    """The live part of an endpoint's page: deployments, replicas, traffic; polled."""
    info = _as_seen_by(request, ws, _api(request).get_endpoint(ws, name))
    return web.render(
        request,
        "endpoint_deployments.html",
        workspace=ws,
        endpoint=info,
        deployments=_ordered(info),
        state=endpoint_state(info),
        frames=_frames,
        oob=True,
    )


@router.get("/ws/{ws}/endpoints/{name}/requests", response_class=HTMLResponse)
def sampled_requests(request: Request, ws: str, name: str) -> Response:
    """The newest sampled requests and answers (deployments with ``request_logging``)."""
    api = _api(request)
    info = api.get_endpoint(ws, name)
    sampling = {d.name: float(d.spec.get("request_logging") or 0) for d in _ordered(info)}
    rows = api.get_request_logs(ws, name, None, REQUEST_ROWS) if any(sampling.values()) else []
    for row in rows:
        row["request_shown"] = _clip(row["request"])
        row["response_shown"] = _clip(row["response"])
    return web.render(
        request,
        "endpoint_requests.html",
        workspace=ws,
        endpoint=info,
        sampling=sampling,
        rows=rows,
    )


def _clip(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= SHOWN_BODY else text[:SHOWN_BODY] + "…"


@router.post("/ws/{ws}/endpoints/{name}/traffic", dependencies=[web.WRITE])
async def traffic(request: Request, ws: str, name: str) -> Response:
    data = await web.form(request)
    split: dict[str, Any] = {}
    try:
        for key, value in data.items():
            if key.startswith("traffic."):
                split[key[len("traffic.") :]] = int(value or 0)
        await run_in_threadpool(_api(request).update_endpoint, ws, name, split)
    except ValueError:
        return endpoint(request, ws, name, message="Traffic is given in whole percents.")
    except CumuloError as exc:
        return endpoint(request, ws, name, message=exc.message)
    return web.see_other(f"/ws/{ws}/endpoints/{name}")


@router.post("/ws/{ws}/endpoints/{name}/test", response_class=HTMLResponse)
async def test_request(request: Request, ws: str, name: str) -> Response:
    """Send the form's body to the endpoint and show what it answered."""
    data = await web.form(request)
    body = data.get("body", "")
    deployment = data.get("deployment", "")
    try:  # the visitor may read this workspace (the route's check): only scoring may fail
        result = await _send(request, ws, name, body, deployment)
    except CumuloError as exc:
        result = {"error": exc.message, "status": None, "ok": False}
    if web.is_fragment(request):
        return web.render(request, "endpoint_test_result.html", result=result)
    info = await run_in_threadpool(_api(request).get_endpoint, ws, name)
    context = await run_in_threadpool(_context, request, ws, info)
    context["sample"] = body
    return web.render(request, "endpoint.html", message="", result=result, **context)


async def _send(request: Request, ws: str, name: str, body: str, deployment: str) -> dict[str, Any]:
    raw = body.encode()
    if len(raw) > MAX_TEST_BODY:
        raise InvalidInput(
            f"The test form sends at most {MAX_TEST_BODY // 1024} KiB; call the scoring URI "
            "directly for larger bodies."
        )
    api = _api(request)
    info = await run_in_threadpool(api.get_endpoint, ws, name)
    headers = {"content-type": "application/json"}
    if info.auth_mode == "key":
        # The studio scores with the key only for those who may read the key.
        await run_in_threadpool(web.guard, request, ws, True)
        keys = await run_in_threadpool(api.get_keys, ws, name)
        headers["authorization"] = f"Bearer {keys['primary']}"
    elif info.auth_mode == "token":
        token = request.cookies.get(web.COOKIE) or _bearer(request)
        if token:
            headers["authorization"] = f"Bearer {token}"
    if deployment:
        headers["cumulo-model-deployment"] = deployment
    # The endpoint router of this process answers, as it would a client of the scoring URI.
    transport = httpx.ASGITransport(app=web.services(request).hosting.router)
    started = time.perf_counter()
    async with httpx.AsyncClient(transport=transport, base_url="http://studio") as client:
        response = await client.post(
            info.scoring_path or scoring_path(ws, name), content=raw, headers=headers
        )
    elapsed = (time.perf_counter() - started) * 1000
    text = response.text
    try:
        answered: Any = json.loads(text)
        shown = json.dumps(answered, indent=2)
    except ValueError:
        answered, shown = None, text
    failure = {"message": "", "traceback": ""}
    error_id = answered.get("error_id") if isinstance(answered, dict) else None
    if response.status_code >= 500 and isinstance(error_id, str):
        # The model's own error is in the replica's log, under the id the caller was given.
        who = response.headers.get("cumulo-model-deployment") or deployment or None
        log_text = await run_in_threadpool(api.get_logs, ws, name, who, LOG_LINES)
        failure = model_failure(log_text, error_id)
    return {
        "error": "",
        "model_error": failure["message"],
        "model_traceback": failure["traceback"],
        "status": response.status_code,
        "ok": response.is_success,
        "deployment": response.headers.get("cumulo-model-deployment", ""),
        "ms": elapsed,
        "body": shown[:SHOWN_ANSWER],
        "truncated": len(shown) > SHOWN_ANSWER,
    }


_TRACEBACK_END = re.compile(r"^\S")  # the first unindented line after the frames


def model_failure(log_text: str, error_id: str) -> dict[str, str]:
    """The exception (last line) and traceback logged under ``error_id`` in a replica's log."""
    lines = log_text.splitlines()
    start = next((i for i in range(len(lines) - 1, -1, -1) if error_id in lines[i]), None)
    if start is None:
        return {"message": "", "traceback": ""}
    block: list[str] = []
    for line in lines[start + 1 :]:
        block.append(line)
        if block[0].startswith("Traceback") and len(block) > 1 and _TRACEBACK_END.match(line):
            break
    message = block[-1].strip() if block and block[0].startswith("Traceback") else ""
    return {"message": message, "traceback": "\n".join(block) if message else ""}


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


# --------------------------------------------------------------------- data
@data_router.get("/ws/{ws}/endpoints/{name}/metrics")
def metrics(
    request: Request,
    ws: str,
    name: str,
    deployment: str = Query(max_length=64),
    minutes: int = Query(default=60, ge=1, le=1440),
) -> dict[str, Any]:
    """Per minute of the last ``minutes``: requests, errors and p50/p95/p99 latency (ms).

    Minutes without requests are there with zero requests and no latency, so
    a chart shows the whole window.
    """
    rows = _api(request).get_metrics(ws, name, deployment, minutes)
    last = int(time.time() // 60) * 60_000
    x = [last - (minutes - 1 - i) * 60_000 for i in range(minutes)]
    at = {m: i for i, m in enumerate(x)}
    out: dict[str, list[Any]] = {k: [None] * minutes for k in ("p50", "p95", "p99", "mean")}
    requests, errors = [0] * minutes, [0] * minutes
    for row in rows:
        i = at.get(row["minute"])
        if i is None:
            continue
        requests[i] += row["requests"]
        errors[i] += row["errors"]
        for k in ("p50", "p95", "p99", "mean"):
            out[k][i] = row.get(f"{k}_ms")
    return {
        "deployment": deployment,
        "x": [m // 1000 for m in x],
        "requests": requests,
        "errors": errors,
        **out,
        "total": sum(requests),
        "total_errors": sum(errors),
    }


@data_router.get("/ws/{ws}/endpoints/{name}/logs")
def logs(
    request: Request,
    ws: str,
    name: str,
    deployment: str = Query(default="", max_length=64),
    tail: int = Query(default=LOG_LINES, ge=1, le=10_000),
) -> dict[str, Any]:
    """The last ``tail`` lines of each replica's log (of one deployment, or all)."""
    text = _api(request).get_logs(ws, name, deployment or None, tail)
    return {"text": text, "at": int(time.time() * 1000)}
