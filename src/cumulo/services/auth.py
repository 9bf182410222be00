"""Tokens and roles: who may read, write or manage a workspace.

Roles, from weakest to strongest: ``reader`` (read only), ``contributor``
(read and write), ``owner`` (also manage the workspace's tokens). A token
belongs to one workspace, or to every workspace (``"*"``); only an owner token
for every workspace may create workspaces.
"""

from __future__ import annotations

from cumulo.core import validation
from cumulo.core.entities import TokenInfo
from cumulo.core.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from cumulo.store.metadata import MetadataStore
from cumulo.store.tokens import TokenStore

ROLES = ("reader", "contributor", "owner")
ALL_WORKSPACES = "*"
_RANK = {role: i for i, role in enumerate(ROLES)}
_MAX_TOKEN = 512


def parse_role(role: str) -> str:
    if role not in _RANK:
        raise InvalidInput(f"Unknown role {role!r}; use one of {', '.join(ROLES)}.")
    return role


class AuthService:
    def __init__(self, tokens: TokenStore, metadata: MetadataStore) -> None:
        self.tokens = tokens
        self.metadata = metadata

    # ------------------------------------------------------------ managing
    def create_token(
        self, workspace: str, role: str, description: str = ""
    ) -> tuple[TokenInfo, str]:
        """A new token for ``workspace`` (or ``"*"``); the clear token is returned once."""
        parse_role(role)
        if workspace != ALL_WORKSPACES:
            validation.workspace_name(workspace)
            self.metadata.get_workspace(workspace)  # NotFound names how to create it
        description = validation.text_value(description, 1000, "Token description")
        return self.tokens.create(workspace, role, description)

    def list_tokens(
        self, workspace: str | None = None, include_revoked: bool = False
    ) -> list[TokenInfo]:
        return self.tokens.list(workspace, include_revoked=include_revoked)

    def revoke_token(self, token_id: str, workspace: str | None = None) -> TokenInfo:
        """Revoke a token; with ``workspace``, only a token of that workspace."""
        if workspace is not None and self.tokens.get(token_id).workspace != workspace:
            raise NotFound(f"Token {token_id!r} does not exist in workspace {workspace!r}.")
        return self.tokens.revoke(token_id)

    # ------------------------------------------------------------- checking
    def authenticate(self, token: str) -> TokenInfo:
        """The live token's record; raises Unauthenticated for unknown or revoked tokens."""
        info = self.tokens.find(token) if 0 < len(token) <= _MAX_TOKEN else None
        if info is None:
            raise Unauthenticated(
                "Unknown token; create one with `cumulo token create --workspace W --role R`."
            )
        if info.revoked:
            raise Unauthenticated(f"Token {info.id} was revoked; ask an owner for a new one.")
        return info

    @staticmethod
    def authorize(who: TokenInfo, workspace: str, write: bool, manage: bool = False) -> None:
        """Raise PermissionDenied unless ``who`` may read (write, manage) ``workspace``.

        ``workspace`` ``"*"`` stands for the server itself (creating workspaces).
        """
        if who.workspace not in (ALL_WORKSPACES, workspace):
            raise PermissionDenied(
                f"Token {who.id} is for workspace {who.workspace!r}, not {workspace!r}; "
                "use a token of that workspace."
            )
        needed = "owner" if manage else "contributor" if write else "reader"
        if _RANK.get(who.role, -1) < _RANK[needed]:
            action = "manage" if manage else "change" if write else "read"
            raise PermissionDenied(
                f"Token {who.id} has role {who.role}, which cannot {action} "
                f"{'the server' if workspace == ALL_WORKSPACES else repr(workspace)}; "
                f"a {needed} token is needed."
            )

    @staticmethod
    def can_read(who: TokenInfo, workspace: str) -> bool:
        return who.workspace in (ALL_WORKSPACES, workspace)
