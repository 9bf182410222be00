"""Online endpoints in the studio: deployments, traffic, a test form, snippets, charts, logs.

The test form is answered by the server: it sends the body to the endpoint's
router in this process with the endpoint's key (or the visitor's own token),
so the key never reaches a visitor who may not read it. Keys are shown (in
the consume snippets) only to those who may change the workspace, as the
API's ``/keys`` route does.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from cumulo.core.deployments import DeploymentInfo, EndpointInfo, scoring_path, swagger_path
from cumulo.core.errors import CumuloError, InvalidInput
from cumulo.server import auth
from cumulo.server.studio import runs, web
from cumulo.services.models_api import ModelsApi
from cumulo.services.supervisor import router_app
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
_WORST_FIRST = ("Failed", "Unhealthy", "Updating", "Creating")
# Frames of the scoring server itself (in this interpreter or in a deployment's environment).
_SERVER_FRAMES = "/cumulo/serving/"


def _api(request: Request) -> ModelsApi:
    return ModelsApi(web.services(request))


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


def sample_body(dep: DeploymentInfo | None) -> str:
    """A body to start the test form with: the deployment's sample or its schema's example."""
    if dep is None:
        return "{}"
    request_schema, _ = deployment_schemas({**dep.spec, "kind": dep.kind})
    example = request_schema.get("example")
    return json.dumps(example, indent=2) if example is not None else "{}"


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
    samples = {d.name: sample_body(d) for d in deployments}
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
    transport = httpx.ASGITransport(app=router_app(web.services(request)))
    started = time.perf_counter()
    async with httpx.AsyncClient(transport=transport, base_url="http://studio") as client:
        response = await client.post(
            info.scoring_path or scoring_path(ws, name), content=raw, headers=headers
        )
    elapsed = (time.perf_counter() - started) * 1000
    text = response.text
    try:
        shown = json.dumps(json.loads(text), indent=2)
    except ValueError:
        shown = text
    return {
        "error": "",
        "status": response.status_code,
        "ok": response.is_success,
        "deployment": response.headers.get("cumulo-model-deployment", ""),
        "ms": elapsed,
        "body": shown[:SHOWN_ANSWER],
        "truncated": len(shown) > SHOWN_ANSWER,
    }


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
