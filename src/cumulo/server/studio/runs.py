"""Run details: overview, metrics, images, logs, outputs, code and child runs."""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse

from cumulo.core.entities import FileInfo, MetricRecord, RunInfo
from cumulo.core.status import TERMINAL
from cumulo.server.studio import logs, web

router = APIRouter(route_class=web.PageRoute, include_in_schema=False)

TABS = [
    ("overview", "Overview"),
    ("metrics", "Metrics"),
    ("images", "Images"),
    ("logs", "Logs"),
    ("outputs", "Outputs"),
    ("code", "Code"),
    ("children", "Child runs"),
]
SNAPSHOT_PREFIX = "snapshot"
PREVIEW_BYTES = 512 * 1024
CSV_ROWS = 500
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>.+)$')


def _run(request: Request, ws: str, run_id: str) -> RunInfo:
    web.guard(request, ws)
    return web.services(request).tracking.get_run(ws, run_id)


def _page(request: Request, run: RunInfo, tab: str, template: str, **context: Any) -> Response:
    return web.render(
        request,
        template,
        workspace=run.workspace,
        run=run,
        tab=tab,
        tabs=TABS,
        active=run.status not in {s.value for s in TERMINAL},
        nav="experiments",
        title=f"{run.display_name} · {run.experiment_name}",
        **context,
    )


# ------------------------------------------------------------------ overview
@router.get("/ws/{ws}/runs/{run_id}", response_class=HTMLResponse)
def overview(request: Request, ws: str, run_id: str) -> Response:
    run = _run(request, ws, run_id)
    tracking = web.services(request).tracking
    page = tracking.search_runs(ws, parent_id=run_id, order_by=["attributes.number ASC"])
    parent = tracking.get_run(ws, run.parent_id) if run.parent_id else None
    traceback = (run.error or {}).get("traceback") or ""
    return _page(
        request,
        run,
        "overview",
        "run_overview.html",
        children=page.runs[:20],
        child_count=len(page.runs),
        parent=parent,
        frames=failing_lines(traceback),
        details=_details(run),
    )


@router.get("/ws/{ws}/runs/{run_id}/header", response_class=HTMLResponse)
def header(request: Request, ws: str, run_id: str) -> Response:
    """The live part of every run page: status, times; polled while the run is active."""
    run = _run(request, ws, run_id)
    return web.render(
        request,
        "run_header.html",
        run=run,
        workspace=ws,
        active=run.status not in {s.value for s in TERMINAL},
    )


def _details(run: RunInfo) -> list[tuple[str, Any]]:
    props = run.properties
    environment = props.get("environment") or run.tags.get("environment") or ""
    snapshot = props.get("snapshot") or props.get("snapshot_id") or ""
    return [
        ("Run id", run.id),
        ("Experiment", run.experiment_name),
        ("Kind", run.kind),
        ("Submitted by", run.user or "—"),
        ("Created", web.when(run.created_at)),
        ("Started", web.when(run.started_at) or "—"),
        ("Ended", web.when(run.ended_at) or "—"),
        ("Duration", web.duration(run.duration) or "—"),
        ("Compute", run.compute_target or "local"),
        ("Environment", environment or "—"),
        ("Snapshot", snapshot or "—"),
    ]


def failing_lines(traceback: str) -> list[dict[str, Any]]:
    """Frames of a Python traceback, the last one (where it failed) marked."""
    frames: list[dict[str, Any]] = []
    lines = traceback.splitlines()
    for i, text in enumerate(lines):
        match = _FRAME.match(text)
        if not match:
            continue
        code = lines[i + 1].strip() if i + 1 < len(lines) and not _FRAME.match(lines[i + 1]) else ""
        frames.append({**match.groupdict(), "code": code, "last": False})
    if frames:
        frames[-1]["last"] = True
    return frames[-6:]


# ------------------------------------------------------------------- metrics
@router.get("/ws/{ws}/runs/{run_id}/metrics", response_class=HTMLResponse)
def metrics(request: Request, ws: str, run_id: str) -> Response:
    run = _run(request, ws, run_id)
    records = web.services(request).tracking.get_run_records(ws, run_id)
    return _page(
        request,
        run,
        "metrics",
        "run_metrics.html",
        keys=sorted(run.metrics),
        tables=_tables(records),
    )


def _tables(records: list[MetricRecord]) -> list[dict[str, Any]]:
    """Lists, rows and tables as ``{name, columns, rows}`` for HTML tables."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.kind == "image":
            continue
        if r.kind == "row":
            table = out.setdefault(r.name, {"name": r.name, "kind": "row", "columns": {}})
            n = max((len(v) for v in table["columns"].values()), default=0)
            for col, value in r.value.items():
                table["columns"].setdefault(col, [None] * n).append(value)
            for values in table["columns"].values():
                values.extend([None] * (n + 1 - len(values)))
        elif r.kind == "list":
            out[r.name] = {"name": r.name, "kind": "list", "columns": {r.name: list(r.value)}}
        else:
            cols = {k: list(v) for k, v in dict(r.value).items()}
            out[r.name] = {"name": r.name, "kind": "table", "columns": cols}
    tables = []
    for t in out.values():
        cols = list(t["columns"])
        n = max((len(v) for v in t["columns"].values()), default=0)
        rows = [[_at(t["columns"][c], i) for c in cols] for i in range(n)]
        tables.append({"name": t["name"], "kind": t["kind"], "columns": cols, "rows": rows})
    return sorted(tables, key=lambda t: t["name"])


def _at(values: list[Any], i: int) -> Any:
    return values[i] if i < len(values) else None


@router.get("/ws/{ws}/runs/{run_id}/images", response_class=HTMLResponse)
def images(request: Request, ws: str, run_id: str) -> Response:
    run = _run(request, ws, run_id)
    records = web.services(request).tracking.get_run_records(ws, run_id)
    gallery: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.kind == "image" and isinstance(r.value, dict) and r.value.get("path"):
            gallery.setdefault(r.name, []).append(
                {"path": r.value["path"], "at": r.timestamp, "description": r.description}
            )
    return _page(request, run, "images", "run_images.html", gallery=gallery)


# ---------------------------------------------------------------------- logs
@router.get("/ws/{ws}/runs/{run_id}/logs", response_class=HTMLResponse)
def logs_tab(request: Request, ws: str, run_id: str, name: str = "") -> Response:
    run = _run(request, ws, run_id)
    names = logs.log_names(web.services(request), ws, run_id)
    chosen = name if name in names else (names[0] if names else "")
    return _page(request, run, "logs", "run_logs.html", names=names, chosen=chosen)


# ------------------------------------------------------------ outputs, code
@router.get("/ws/{ws}/runs/{run_id}/outputs", response_class=HTMLResponse)
def outputs(request: Request, ws: str, run_id: str, path: str = "", file: str = "") -> Response:
    run = _run(request, ws, run_id)
    return _browser(request, run, "outputs", "", path, file)


@router.get("/ws/{ws}/runs/{run_id}/code", response_class=HTMLResponse)
def code(request: Request, ws: str, run_id: str, path: str = "", file: str = "") -> Response:
    run = _run(request, ws, run_id)
    return _browser(request, run, "code", SNAPSHOT_PREFIX, path, file)


def _browser(request: Request, run: RunInfo, tab: str, root: str, path: str, file: str) -> Response:
    tracking = web.services(request).tracking
    ws = run.workspace
    folder = _join(root, path)
    entries = tracking.list_artifacts(ws, run.id, folder)
    shown = [
        FileInfo(_strip(root, e.path), e.is_dir, e.size)
        for e in sorted(entries, key=lambda e: (not e.is_dir, e.path))
    ]
    preview = _preview(request, run, _join(root, file)) if file else None
    crumbs = []
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        crumbs.append((part, "/".join(parts[: i + 1])))
    return _page(
        request,
        run,
        tab,
        "run_files.html",
        root=root,
        path=path,
        crumbs=crumbs,
        entries=shown,
        file=file,
        preview=preview,
        parent=posixpath.dirname(path.rstrip("/")),
    )


def _join(root: str, path: str) -> str:
    path = path.strip("/")
    return f"{root}/{path}" if root and path else root or path


def _strip(root: str, path: str) -> str:
    return path[len(root) + 1 :] if root and path.startswith(root + "/") else path


def _preview(request: Request, run: RunInfo, path: str) -> dict[str, Any]:
    tracking = web.services(request).tracking
    size = tracking.artifact_size(run.workspace, run.id, path)
    ext = posixpath.splitext(path)[1].lower()
    base: dict[str, Any] = {"path": path, "size": size, "kind": "none", "truncated": False}
    if ext in IMAGE_TYPES:
        return {**base, "kind": "image"}
    with tracking.open_artifact(run.workspace, run.id, path) as fh:
        head = fh.read(PREVIEW_BYTES + 1)
    truncated = len(head) > PREVIEW_BYTES
    head = head[:PREVIEW_BYTES]
    if b"\x00" in head[:8192]:
        return base
    text = head.decode("utf-8", "replace")
    base["truncated"] = truncated
    if ext == ".json" and not truncated:
        try:
            return {**base, "kind": "json", "text": json.dumps(json.loads(text), indent=2)}
        except ValueError:
            pass
    if ext in (".csv", ".tsv"):
        reader = csv.reader(io.StringIO(text), delimiter="\t" if ext == ".tsv" else ",")
        rows = []
        for i, row in enumerate(reader):
            if i > CSV_ROWS:
                base["truncated"] = True
                break
            rows.append(row)
        if truncated and rows:
            rows.pop()  # the last line may be cut in half
        return {**base, "kind": "csv", "header": rows[0] if rows else [], "rows": rows[1:]}
    return {**base, "kind": "text", "text": text}


@router.get("/ws/{ws}/runs/{run_id}/file/{path:path}")
def raw_file(request: Request, ws: str, run_id: str, path: str, download: bool = False) -> Response:
    """A run's file: inline for images and text previews, or as a download."""
    web.guard(request, ws)
    tracking = web.services(request).tracking
    size = tracking.artifact_size(ws, run_id, path)
    stream = tracking.open_artifact(ws, run_id, path)
    ext = posixpath.splitext(path)[1].lower()
    name = posixpath.basename(path).replace('"', "")
    media = "application/octet-stream"
    headers = {
        "Content-Length": str(size),
        "X-Content-Type-Options": "nosniff",
        # A file from a run is never trusted to run script in the studio's origin.
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
    }
    if download or ext not in IMAGE_TYPES:
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    if ext in IMAGE_TYPES and not download:
        media = IMAGE_TYPES[ext]

    def chunks() -> Any:
        with stream:
            while chunk := stream.read(1024 * 1024):
                yield chunk

    return StreamingResponse(chunks(), media_type=media, headers=headers)


# ------------------------------------------------------------------ children
@router.get("/ws/{ws}/runs/{run_id}/children", response_class=HTMLResponse)
def children(request: Request, ws: str, run_id: str) -> Response:
    run = _run(request, ws, run_id)
    page = web.services(request).tracking.search_runs(
        ws, parent_id=run_id, order_by=["attributes.number ASC"], max_results=1000
    )
    keys = sorted({k for r in page.runs for k in r.metrics})[:6]
    params = sorted({k for r in page.runs for k in r.params})[:6]
    return _page(
        request,
        run,
        "children",
        "run_children.html",
        children=page.runs,
        metric_keys=keys,
        param_keys=params,
    )

