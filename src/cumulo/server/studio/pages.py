"""Studio pages: login, home, experiments and the runs table of an experiment."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from cumulo.core.entities import RunInfo
from cumulo.core.errors import CumuloError, InvalidInput, Unauthenticated
from cumulo.core.pages import encode_token
from cumulo.core.status import TERMINAL, RunStatus
from cumulo.server import auth
from cumulo.server.studio import notebooks, web

router = APIRouter(route_class=web.PageRoute, include_in_schema=False)

ACTIVE = [s.value for s in RunStatus if s not in TERMINAL]
HOME_WORKSPACES = 20
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_COLUMNS = 4  # metrics and params shown when the URL names none
COLUMN_KINDS = ("metrics.", "params.", "tags.")


# ---------------------------------------------------------------------- login
@router.get("/login", response_class=HTMLResponse, dependencies=[web.PUBLIC])
def login_page(request: Request, next: str = "/") -> Response:
    response = web.render(
        request, "login.html", next=_local(next), message="", title="Sign in", signed_in=False
    )
    if _has_bad_cookie(request):
        response.delete_cookie(web.COOKIE)  # an unknown or revoked token: sign in afresh
    return response


def _has_bad_cookie(request: Request) -> bool:
    if not web.auth_on(request) or web.COOKIE not in request.cookies:
        return False
    # The cookie alone, judged with a state of its own (the check caches its answer there).
    scope = {**request.scope, "headers": _without_authorization(request), "state": {}}
    cookie_only = Request(scope)
    try:
        auth.current_token(web.with_cookie_token(cookie_only))
    except Unauthenticated:
        return True
    return False


def _without_authorization(request: Request) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in request.scope["headers"] if k != b"authorization"]


@router.post("/login", response_class=HTMLResponse, dependencies=[web.PUBLIC])
async def login(request: Request) -> Response:
    data = await web.form(request)
    token, target = data.get("token", "").strip(), _local(data.get("next", "/"))
    probe = web.with_cookie_token(request)
    if token:
        scope = dict(request.scope)
        scope["headers"] = [
            (k, v) for k, v in request.scope["headers"] if k not in (b"authorization", b"cookie")
        ] + [(b"authorization", f"Bearer {token}".encode("latin-1", "replace"))]
        probe = Request(scope, request.receive)
    try:
        if not token:
            raise InvalidInput("Paste a token to sign in.")
        auth.current_token(probe)
    except CumuloError as exc:
        return web.render(
            request,
            "login.html",
            401,
            next=target,
            message=exc.message,
            title="Sign in",
            signed_in=False,
        )
    response = web.see_other(target)
    response.set_cookie(web.COOKIE, token, httponly=True, samesite="lax", max_age=30 * 86400)
    return response


@router.post("/logout", dependencies=[web.PUBLIC])
def logout() -> Response:
    response = web.see_other("/login")
    response.delete_cookie(web.COOKIE)
    return response


def _local(url: str) -> str:
    """Only paths on this server are followed after a login (no open redirect)."""
    return url if url.startswith("/") and not url.startswith("//") else "/"


# ----------------------------------------------------------------------- home
@router.get("/", response_class=HTMLResponse, dependencies=[web.SIGNED_IN])
def home(request: Request) -> Response:
    tracking = web.services(request).tracking
    if web.auth_on(request) and not web.has_token(request):
        raise Unauthenticated("Sign in with a token to use the studio.")
    # An unknown or revoked token reads no workspace; say so instead of an empty page.
    auth.current_token(web.with_cookie_token(request))
    workspaces = [w for w in tracking.list_workspaces() if web.readable(request, w.name)]
    recent: list[RunInfo] = []
    active: list[RunInfo] = []
    for ws in workspaces[:HOME_WORKSPACES]:
        recent += tracking.search_runs(ws.name, max_results=10).runs
        active += tracking.search_runs(ws.name, statuses=ACTIVE, max_results=25).runs
    recent.sort(key=lambda r: -r.created_at)
    active.sort(key=lambda r: -r.created_at)
    return web.render(
        request,
        "home.html",
        workspaces=workspaces,
        recent=recent[:12],
        active=active[:25],
        nav="home",
    )


@router.get("/ws/{ws}", response_class=HTMLResponse, dependencies=[web.READ])
def workspace_home(request: Request, ws: str) -> Response:
    web.services(request).tracking.get_workspace(ws)
    return web.see_other(f"/ws/{ws}/experiments")


# ---------------------------------------------------------------- experiments
@router.get("/ws/{ws}/experiments", response_class=HTMLResponse, dependencies=[web.READ])
def experiments(request: Request, ws: str, view: str = "active", message: str = "") -> Response:
    tracking = web.services(request).tracking
    infos = tracking.list_experiments(ws, include_archived=view == "archived")
    if view == "archived":
        infos = [e for e in infos if e.archived]
    infos.sort(key=lambda e: -e.last_activity)
    return web.render(
        request,
        "experiments.html",
        workspace=ws,
        experiments=infos,
        notebooks=notebooks.button(request, ws),
        view=view,
        message=message,
        nav="experiments",
        title=f"Experiments · {ws}",
    )


@router.post("/ws/{ws}/experiments", dependencies=[web.WRITE])
async def create_experiment(request: Request, ws: str) -> Response:
    name = (await web.form(request)).get("name", "").strip()
    try:
        info = web.services(request).tracking.create_experiment(ws, name)
    except CumuloError as exc:
        return experiments(request, ws, message=exc.message)
    return web.see_other(f"/ws/{ws}/experiments/{info.id}")


@router.post("/ws/{ws}/experiments/{experiment_id}/{action}", dependencies=[web.WRITE])
def change_experiment(request: Request, ws: str, experiment_id: int, action: str) -> Response:
    tracking = web.services(request).tracking
    try:
        if action == "archive":
            tracking.update_experiment(ws, experiment_id, archived=True)
        elif action == "restore":
            tracking.update_experiment(ws, experiment_id, archived=False)
        elif action == "delete":
            tracking.delete_experiment(ws, experiment_id)
        else:
            raise InvalidInput(f"Unknown action {action!r}: use archive, restore or delete.")
    except CumuloError as exc:
        return experiments(request, ws, message=exc.message)
    return web.see_other(f"/ws/{ws}/experiments")


# ----------------------------------------------------------------- runs table
@router.get(
    "/ws/{ws}/experiments/{experiment_id}", response_class=HTMLResponse, dependencies=[web.READ]
)
def runs_table(
    request: Request,
    ws: str,
    experiment_id: int,
    filter: str = "",
    order: str = "",
    cols: list[str] = Query(default=[]),
    page: int = Query(default=1, ge=1),
    size: int = Query(default=50),
    children: bool = False,
) -> Response:
    tracking = web.services(request).tracking
    experiment = tracking.get_experiment(ws, experiment_id)
    size = size if size in PAGE_SIZES else 50
    error = ""
    runs: list[RunInfo] = []
    more = False
    try:
        found = tracking.search_runs(
            ws,
            [experiment_id],
            filter=filter or None,
            order_by=[order] if order else None,
            max_results=size,
            page_token=encode_token((page - 1) * size) if page > 1 else None,
            top_level_only=not children,
        )
        runs, more = found.runs, found.next_page_token is not None
    except InvalidInput as exc:
        error = exc.message
    columns = [c for c in cols if c.startswith(COLUMN_KINDS)]
    if not cols:
        columns = _default_columns(runs)
    nested = {} if children else _children_of(tracking, ws, experiment_id, runs)
    params: dict[str, Any] = {
        "filter": filter,
        "order": order,
        "cols": columns if cols else [],
        "size": size if size != 50 else None,
        "children": "true" if children else None,
    }
    context: dict[str, Any] = dict(
        workspace=ws,
        experiment=experiment,
        runs=runs,
        error=error,
        columns=columns,
        available=_available_columns(runs, columns),
        params=params,
        filter=filter,
        order=order,
        page=page,
        size=size,
        sizes=PAGE_SIZES,
        more=more,
        children=children,
        nested=nested,
        live=any(r.status in ACTIVE for r in runs),
        sort_link=lambda col: _sort_link(col, order),
        cell=_cell,
        best=_best(runs, columns),
        total=_total(
            runs, more, page, size, experiment.run_count if children and not filter else None
        ),
        nav="experiments",
        title=f"{experiment.name} · {ws}",
    )
    if web.is_fragment(request):
        return web.render(request, "runs_table.html", **context)
    return web.render(request, "runs.html", **context)


@router.get(
    "/ws/{ws}/experiments/{experiment_id}/columns",
    response_class=HTMLResponse,
    dependencies=[web.READ],
)
def run_columns(
    request: Request, ws: str, experiment_id: int, cols: list[str] = Query(default=[])
) -> Response:
    """Every key the experiment's runs use, as the column picker's choices."""
    keys = web.services(request).tracking.run_keys(ws, experiment_id)
    chosen = [c for c in cols if c.startswith(COLUMN_KINDS)]
    available = {f"{kind}.{k}" for kind, names in keys.items() for k in names}
    return web.render(
        request, "runs_columns.html", available=sorted(available | set(chosen)), columns=chosen
    )


NESTED_MAX = 1000  # child runs read for one page of parents; each parent links to all of its own


def _children_of(
    tracking: Any, ws: str, experiment_id: int, runs: list[RunInfo]
) -> dict[str, list[RunInfo]]:
    """The child runs of the shown runs, by parent, in the order they were made."""
    if not runs:
        return {}
    ids = ", ".join(f"'{r.id}'" for r in runs)
    found = tracking.search_runs(
        ws,
        [experiment_id],
        filter=f"attributes.parent_id IN ({ids})",
        order_by=["attributes.number ASC"],
        max_results=NESTED_MAX,
    )
    nested: dict[str, list[RunInfo]] = {}
    for child in found.runs:
        nested.setdefault(child.parent_id or "", []).append(child)
    return nested


def _default_columns(runs: list[RunInfo]) -> list[str]:
    """The metrics and params whose values differ between the shown runs (what tells them
    apart); where none differ (one run), the first ones."""
    out = []
    for kind in ("metrics", "params"):
        keys = sorted({k for r in runs for k in getattr(r, kind)})
        varying = [k for k in keys if len({repr(_cell(r, f"{kind}.{k}")) for r in runs}) > 1]
        chosen = (varying or keys)[:DEFAULT_COLUMNS]
        out += [f"{kind}.{k}" for k in sorted(chosen)]
    return out


def _total(runs: list[RunInfo], more: bool, page: int, size: int, known: int | None) -> int | None:
    """How many runs the filter finds, where that is known without counting them all."""
    return (page - 1) * size + len(runs) if not more else known


# A metric whose name says it is an error or a cost is best when lowest.
LOWER_IS_BETTER = ("loss", "error", "err", "rmse", "mse", "mae", "perplexity", "latency", "time")


def _best(runs: list[RunInfo], columns: list[str]) -> dict[str, float]:
    """The best value of each metric column among the shown runs (highest, or lowest for losses)."""
    best = {}
    for column in columns:
        if not column.startswith("metrics."):
            continue
        values = [v for r in runs if isinstance(v := _cell(r, column), float) and v == v]
        if len(values) > 1:
            lower = any(word in column.lower() for word in LOWER_IS_BETTER)
            best[column] = min(values) if lower else max(values)
    return best


def _available_columns(runs: list[RunInfo], chosen: list[str]) -> list[str]:
    keys = {f"metrics.{k}" for r in runs for k in r.metrics}
    keys |= {f"params.{k}" for r in runs for k in r.params}
    keys |= {f"tags.{k}" for r in runs for k in r.tags}
    return sorted(keys | set(chosen))


def _quoted(column: str) -> str:
    kind, key = column.split(".", 1)
    return f"{kind}.`{key}`"


def _sort_link(column: str, order: str) -> tuple[str, str]:
    """The order that a click on a column header asks for, and the arrow it shows now."""
    term = column if column.startswith("attributes.") else _quoted(column)
    if order == f"{term} DESC":
        return f"{term} ASC", "▼"
    if order in (f"{term} ASC", term):
        return f"{term} DESC", "▲"
    return f"{term} DESC", ""


def _cell(run: RunInfo, column: str) -> Any:
    kind, key = column.split(".", 1)
    if kind == "metrics":
        metric = run.metrics.get(key)
        return None if metric is None else metric.value
    if kind == "params":
        return run.params.get(key)
    return run.tags.get(key)
