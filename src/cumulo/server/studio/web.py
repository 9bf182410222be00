"""What every studio page shares: templates, formatting, errors as pages, token login."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from cumulo.core.errors import HTTP_STATUS, CumuloError, Unauthenticated
from cumulo.server import auth
from cumulo.server.access import Access, declares, public
from cumulo.services.context import Services

# Templates and static files ship as package data of ``cumulo`` (not Python code).
STUDIO_DIR = Path(__file__).resolve().parents[2] / "studio"
TEMPLATES = STUDIO_DIR / "templates"
STATIC = STUDIO_DIR / "static"
STATIC_URL = "/studio-static"
DATA_PREFIX = "/studio-data"
COOKIE = "cumulo_token"


def asset_version(folder: Path) -> str:
    """A hash of every file under ``folder``, names and contents: asset URLs carry it, so
    browsers refetch the assets after any of them changes or a new one comes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


ASSET_VERSION = asset_version(STATIC)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


# ----------------------------------------------------------------- formatting
def when(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def ago(ms: int | None) -> str:
    if ms is None:
        return ""
    seconds = max(0, int(dt.datetime.now().timestamp() - ms / 1000))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {s:02d}s"
    return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"


def num(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.6g}"
    return "" if value is None else str(value)


def size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def run_colour(run_id: str) -> str:
    """A run's colour, the same in the runs table, the charts and compare (from its id)."""
    h = int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16)
    return f"hsl({h % 360}, {55 + (h >> 9) % 3 * 10}%, {38 + (h >> 11) % 3 * 7}%)"


def qs(params: dict[str, Any], **changes: Any) -> str:
    """A query string from ``params`` with ``changes`` applied (None removes a key)."""
    merged = {**params, **changes}
    pairs: list[tuple[str, Any]] = []
    for k, v in merged.items():
        if v is None or v == "" or v == []:
            continue
        for item in v if isinstance(v, list) else [v]:
            pairs.append((k, item))
    return "?" + urlencode(pairs) if pairs else ""


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    when=when, ago=ago, duration=duration, num=num, size=size, q=quote, colour=run_colour
)
# A short name for a text, for element ids that must stay the same while the text does.
_env.filters["digest"] = lambda text: hashlib.sha256(str(text).encode()).hexdigest()[:12]
_env.globals.update(
    qs=qs,
    static=lambda name: f"{STATIC_URL}/{name}?v={ASSET_VERSION}",
    data_prefix=DATA_PREFIX,
)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("workspace", None)
    context.setdefault("nav", "")
    context.setdefault("title", "Cumulo studio")
    workspace = context["workspace"]
    context.setdefault("may_manage", bool(workspace) and manages(request, workspace))
    context.setdefault("signed_in", has_token(request))
    body = _env.get_template(template).render(request=request, auth_on=auth_on(request), **context)
    return HTMLResponse(body, status_code=status_code)


def is_fragment(request: Request) -> bool:
    """An htmx request asks for the part of the page it swaps, not the whole page."""
    return request.headers.get("hx-request") == "true" and "hx-boosted" not in request.headers


async def form(request: Request) -> dict[str, str]:
    """A URL-encoded form body as a dict (last value wins)."""
    parsed = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# ----------------------------------------------------------------------- auth
def with_cookie_token(request: Request) -> Request:
    """The request as the auth checks see it: the login cookie stands in for the header."""
    token = request.cookies.get(COOKIE)
    if not token or "authorization" in request.headers:
        return request
    scope = dict(request.scope)
    scope["headers"] = [
        *request.scope["headers"],
        (b"authorization", f"Bearer {token}".encode("latin-1", "replace")),
    ]
    return Request(scope, request.receive)


def guard(request: Request, workspace: str, write: bool = False, manage: bool = False) -> None:
    """Raise unless the visitor may read (or change, or manage) ``workspace``."""
    auth.require(with_cookie_token(request), workspace, write or manage, manage=manage)


def manages(request: Request, workspace: str) -> bool:
    try:
        guard(request, workspace, manage=True)
    except CumuloError:
        return False
    return True


# Each studio route declares who may see it (see cumulo.server.access); the
# check runs before the handler, so no handler can render a page it should refuse.
@declares(Access.READ)
async def page_read(request: Request) -> None:
    if auth_on(request):
        await run_in_threadpool(guard, request, request.path_params["ws"])


@declares(Access.WRITE)
async def page_write(request: Request) -> None:
    if auth_on(request):
        await run_in_threadpool(guard, request, request.path_params["ws"], True)


@declares(Access.MANAGE)
async def page_manage(request: Request) -> None:
    if auth_on(request):
        await run_in_threadpool(guard, request, request.path_params["ws"], False, True)


@declares(Access.SIGNED_IN)
async def page_signed_in(request: Request) -> None:
    """Any valid token (or cookie); a missing, revoked or expired one goes to the login page."""
    if auth_on(request):
        await run_in_threadpool(auth.current_token, with_cookie_token(request))


READ = Depends(page_read)
WRITE = Depends(page_write)
MANAGE = Depends(page_manage)
SIGNED_IN = Depends(page_signed_in)
PUBLIC = Depends(public)


def readable(request: Request, workspace: str) -> bool:
    try:
        guard(request, workspace)
    except CumuloError:
        return False
    return True


def has_token(request: Request) -> bool:
    return COOKIE in request.cookies or "authorization" in request.headers


def auth_on(request: Request) -> bool:
    return bool(request.app.state.settings.auth == "token")


# -------------------------------------------------------------------- routing
Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class PageRoute(APIRoute):
    """Studio routes answer errors with a page (or JSON for data requests), not bare JSON.

    A request without a valid token is sent to the login page.
    """

    def get_route_handler(self) -> Handler:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except CumuloError as exc:
                return error_response(request, exc)

        return handler


def error_response(request: Request, exc: CumuloError) -> Response:
    status = HTTP_STATUS.get(exc.code, 500)
    if request.url.path.startswith(DATA_PREFIX):
        return JSONResponse(exc.to_dict(), status_code=status)
    if isinstance(exc, Unauthenticated) and request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return see_other(f"/login?next={quote(target)}")
    ws = _known_workspace(request)
    back = (f"/ws/{quote(ws)}/experiments", f"the experiments of {ws}") if ws else ("/", "home")
    return render(
        request, "error.html", status_code=status, error=exc, title="Error", workspace=ws, back=back
    )


def _known_workspace(request: Request) -> str | None:
    """The workspace a failed page was in, when it exists and the reader may open it:
    the error page keeps that workspace's navigation."""
    ws = request.path_params.get("ws")
    if not isinstance(ws, str) or not ws:
        return None
    try:
        if not readable(request, ws):
            return None
        services(request).tracking.get_workspace(ws)
    except CumuloError:
        return None
    return ws
