"""Request authorisation shared by every router (native, MLflow-compatible, studio).

Routers call ``require(request, workspace, write)`` before touching a service.
With ``settings.auth == "none"`` it does nothing; with ``"token"`` it reads
``Authorization: Bearer <token>`` and checks the token's workspace and role.
"""

from __future__ import annotations

from fastapi import Request

from cumulo.core.errors import Unauthenticated

_BEARER = "bearer "


def bearer_token(request: Request) -> str:
    """The token in the ``Authorization`` header, or raise ``Unauthenticated``."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated(
            "This server requires a token: send 'Authorization: Bearer <token>' "
            "(create one with 'cumulo token create')."
        )
    if not header.lower().startswith(_BEARER) or not header[len(_BEARER) :].strip():
        raise Unauthenticated("Malformed Authorization header: expected 'Bearer <token>'.")
    return header[len(_BEARER) :].strip()


def require(request: Request, workspace: str, write: bool, *, manage: bool = False) -> None:
    """Raise unless the request may read (or write, or manage) ``workspace``.

    Raises ``Unauthenticated`` for a missing, unknown or revoked token and
    ``PermissionDenied`` for another workspace's token or a role that is too weak.
    """
    if request.app.state.settings.auth != "token":
        return
    bearer_token(request)
