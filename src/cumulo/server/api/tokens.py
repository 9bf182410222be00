"""``/api/v1/workspaces/{workspace}/tokens``: owners issue, list and revoke tokens."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from cumulo.server.api.common import WS, Managed
from cumulo.server.responses import JsonResponse
from cumulo.services.auth import AuthService

router = APIRouter(prefix=WS + "/tokens", tags=["tokens"])


async def _auth(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth
    return service


Auth = Annotated[AuthService, Depends(_auth)]


class TokenCreate(BaseModel):
    role: Literal["reader", "contributor", "owner"]
    description: str = Field(default="", max_length=1000)
    expires_in_seconds: int | None = Field(default=None, gt=0, le=10 * 365 * 86400)


@router.post("", status_code=201)
def create_token(body: TokenCreate, workspace: Managed, auth: Auth) -> JsonResponse:
    """A new token for this workspace; the token itself is in this answer only."""
    info, token = auth.create_token(workspace, body.role, body.description, body.expires_in_seconds)
    return JsonResponse({"token": token, "info": info.to_dict()}, status_code=201)


@router.get("")
def list_tokens(workspace: Managed, auth: Auth, include_revoked: bool = False) -> JsonResponse:
    found = auth.list_tokens(workspace, include_revoked=include_revoked)
    return JsonResponse({"tokens": [t.to_dict() for t in found]})


@router.delete("/{token_id}")
def revoke_token(
    workspace: Managed, token_id: Annotated[str, Path(max_length=64)], auth: Auth
) -> JsonResponse:
    return JsonResponse(auth.revoke_token(token_id, workspace=workspace).to_dict())
