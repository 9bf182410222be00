"""Request authorisation shared by every router (native, MLflow-compatible, studio).

Routers call ``require(request, workspace, write)`` before touching a service.
With ``settings.auth == "none"`` it does nothing; with ``"token"`` it reads
``Authorization: Bearer <token>`` (or HTTP Basic with the token as password,
as the MLflow client sends with ``MLFLOW_TRACKING_PASSWORD``) and checks the
token's workspace and role.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import Request

from cumulo.core.entities import TokenInfo
from cumulo.core.errors import Unauthenticated
from cumulo.services.auth import ALL_WORKSPACES, AuthService

_NO_TOKEN = object()


def token_auth(request: Request) -> bool:
    """Whether this server checks tokens."""
    return bool(request.app.state.settings.auth == "token")


def bearer_token(request: Request) -> str:
    """The token in the ``Authorization`` header, or raise ``Unauthenticated``."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated(
            "This server requires a token: send 'Authorization: Bearer <token>' "
            "(create one with `cumulo token create`)."
        )
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        password = decoded.partition(":")[2]
        if password:
            return password
    raise Unauthenticated("Malformed Authorization header: expected 'Bearer <token>'.")


def current_token(request: Request) -> TokenInfo | None:
    """The request's checked token (None when the server does not check tokens)."""
    if not token_auth(request):
        return None
    found = getattr(request.state, "cumulo_token", _NO_TOKEN)
    if found is _NO_TOKEN:
        service: AuthService = request.app.state.auth
        found = service.authenticate(bearer_token(request))
        request.state.cumulo_token = found  # several checks in one request: one lookup
    assert isinstance(found, TokenInfo)
    return found


def require(request: Request, workspace: str, write: bool, *, manage: bool = False) -> None:
    """Raise unless the request may read (or write, or manage) ``workspace``.

    Raises ``Unauthenticated`` for a missing, unknown or revoked token and
    ``PermissionDenied`` for another workspace's token or a role that is too weak.
    ``workspace="*"`` with ``manage=True`` checks for a server-wide owner token.
    """
    who = current_token(request)
    if who is not None:
        AuthService.authorize(who, workspace, write, manage)


def may_read(request: Request, workspace: str) -> bool:
    """Whether the request's token reaches ``workspace`` (for filtering listings)."""
    who = current_token(request)
    return who is None or AuthService.can_read(who, workspace)


__all__ = ["ALL_WORKSPACES", "bearer_token", "current_token", "may_read", "require"]
