"""The audit log page: a workspace's writes and refused requests, for its owners."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from cumulo.server.studio import web

router = APIRouter(route_class=web.PageRoute, include_in_schema=False, dependencies=[web.MANAGE])
PAGE = 200


@router.get("/ws/{ws}/audit", response_class=HTMLResponse)
def audit(request: Request, ws: str, before: int | None = None, refused: bool = False) -> Response:
    request.app.state.audit.flush()  # include what happened a moment ago
    auth = web.services(request).auth
    entries = auth.audit_log(ws, limit=PAGE, before=before, refused_only=refused)
    return web.render(
        request,
        "audit.html",
        workspace=ws,
        entries=entries,
        refused=refused,
        older=entries[-1].id if len(entries) == PAGE else None,
        nav="audit",
        title=f"Audit · {ws}",
    )
