"""``/api/v1/workspaces/{workspace}/audit``: the workspace's audit log, for its owners."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from cumulo.core.validation import INT64_MAX
from cumulo.server.api.common import WS, Managed
from cumulo.server.responses import JsonResponse
from cumulo.services.auth import AuthService

router = APIRouter(prefix=WS + "/audit", tags=["tokens"])


@router.get("")
def audit_log(
    request: Request,
    workspace: Managed,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
    refused_only: bool = False,
) -> JsonResponse:
    """Writes and refused requests, newest first; page on with ``before`` = the last id."""
    request.app.state.audit.flush()  # what happened a moment ago is part of the answer
    auth: AuthService = request.app.state.auth
    found = auth.audit_log(workspace, limit=limit, before=before, refused_only=refused_only)
    return JsonResponse({"entries": [e.to_dict() for e in found]})
