"""Tokens and roles: who may read, write or manage a workspace.

Roles, from weakest to strongest: ``reader`` (read only), ``contributor``
(read and write), ``owner`` (also manage the workspace's tokens). A token
belongs to one workspace, or to every workspace (``"*"``); only an owner token
for every workspace may create workspaces. A token may carry an expiry, after
which it is refused.

Each job gets a token of its own (``create_job_token``): scoped to the job's
workspace, never above ``contributor`` nor above its submitter's role, valid at
most as long as the job may run, and revoked when the job ends (by the job
service) or, after a crash, by the scheduler's sweep (``JobService.revoke_ended_job_tokens``).
"""

from __future__ import annotations

from cumulo.core import validation
from cumulo.core.entities import AuditEntry, TokenInfo, now_ms
from cumulo.core.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from cumulo.store.audit import AuditStore
from cumulo.store.metadata import MetadataStore
from cumulo.store.tokens import TokenStore

ROLES = ("reader", "contributor", "owner")
ALL_WORKSPACES = "*"
_RANK = {role: i for i, role in enumerate(ROLES)}
_MAX_TOKEN = 512
_MAX_EXPIRY_SECONDS = 10 * 365 * 86400
# A job without a run-time limit still gets a token that ends: a week, unless revoked sooner.
JOB_TOKEN_SECONDS = 7 * 86400
JOB_ROLE = "contributor"


def parse_role(role: str) -> str:
    if role not in _RANK:
        raise InvalidInput(f"Unknown role {role!r}; use one of {', '.join(ROLES)}.")
    return role


class AuthService:
    def __init__(self, tokens: TokenStore, metadata: MetadataStore, audit: AuditStore) -> None:
        self.tokens = tokens
        self.metadata = metadata
        self.audit = audit

    # ------------------------------------------------------------ managing
    def create_token(
        self,
        workspace: str,
        role: str,
        description: str = "",
        expires_in_seconds: int | None = None,
    ) -> tuple[TokenInfo, str]:
        """A new token for ``workspace`` (or ``"*"``); the clear token is returned once."""
        parse_role(role)
        if workspace != ALL_WORKSPACES:
            validation.workspace_name(workspace)
            self.metadata.get_workspace(workspace)  # NotFound names how to create it
        description = validation.text_value(description, 1000, "Token description")
        expires_at = None
        if expires_in_seconds is not None:
            if not 0 < expires_in_seconds <= _MAX_EXPIRY_SECONDS:
                raise InvalidInput(
                    f"A token's lifetime must be between 1 second and 10 years, "
                    f"got {expires_in_seconds} seconds."
                )
            expires_at = now_ms() + expires_in_seconds * 1000
        return self.tokens.create(workspace, role, description, expires_at=expires_at)

    def create_job_token(
        self,
        workspace: str,
        run_id: str,
        submitter_role: str | None,
        max_run_seconds: float | None,
    ) -> tuple[TokenInfo, str]:
        """The token a job's script and runner use: least privilege, ending with the job."""
        role = lowest(JOB_ROLE, submitter_role or JOB_ROLE)
        # A minute's grace past the run-time limit: the runner still stores logs and outputs.
        lifetime = (max_run_seconds + 60) if max_run_seconds else JOB_TOKEN_SECONDS
        return self.tokens.create(
            workspace,
            role,
            f"job of run {run_id}",
            expires_at=now_ms() + int(lifetime * 1000),
            run_id=run_id,
        )

    def revoke_job_tokens(self, run_ids: list[str]) -> int:
        return self.tokens.revoke_for_runs(run_ids)

    def live_job_tokens(self) -> list[TokenInfo]:
        return self.tokens.live_job_tokens()

    def list_tokens(
        self, workspace: str | None = None, include_revoked: bool = False
    ) -> list[TokenInfo]:
        return self.tokens.list(workspace, include_revoked=include_revoked)

    def revoke_token(self, token_id: str, workspace: str | None = None) -> TokenInfo:
        """Revoke a token; with ``workspace``, only a token of that workspace."""
        if workspace is not None and self.tokens.get(token_id).workspace != workspace:
            raise NotFound(f"Token {token_id!r} does not exist in workspace {workspace!r}.")
        return self.tokens.revoke(token_id)

    # ---------------------------------------------------------------- audit
    def record(self, entries: list[AuditEntry]) -> None:
        self.audit.append(entries)

    def forget_audit_before(self, at_ms: int) -> int:
        return self.audit.forget_before(at_ms)

    def audit_log(
        self,
        workspace: str | None,
        *,
        limit: int = 100,
        before: int | None = None,
        refused_only: bool = False,
    ) -> list[AuditEntry]:
        """Newest first; ``workspace`` None lists the whole server's."""
        if not 0 < limit <= 10_000:
            raise InvalidInput(f"limit must be between 1 and 10000, got {limit}.")
        if workspace is not None:
            validation.workspace_name(workspace)
        return self.audit.list(workspace, limit=limit, before=before, refused_only=refused_only)

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
        if info.expired(now_ms()):
            raise Unauthenticated(f"Token {info.id} has expired; ask an owner for a new one.")
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

    @staticmethod
    def authorize_job_report(who: TokenInfo, run_id: str) -> None:
        """A job's token reports the status and logs of its own job only."""
        if who.run_id is not None and who.run_id != run_id:
            raise PermissionDenied(
                f"Token {who.id} belongs to the job of run {who.run_id}; "
                f"it cannot report for run {run_id}."
            )


def lowest(a: str, b: str) -> str:
    """The weaker of two roles."""
    return a if _RANK[parse_role(a)] <= _RANK[parse_role(b)] else b
