"""The token store: access tokens by SHA-256 hash, with workspace, role and revocation.

The clear token is returned once when it is created and never stored; a
request's token is hashed and looked up by its hash (a unique index).
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import Row, insert, select, update
from sqlalchemy.sql.expression import ColumnElement

from cumulo.core.entities import TokenInfo, now_ms
from cumulo.core.errors import NotFound
from cumulo.store.db import Database
from cumulo.store.schema_auth import auth_tokens as t

TOKEN_PREFIX = "cumulo_"


def hash_token(token: str) -> str:
    # Tokens are 256 random bits, so a plain (unsalted) hash cannot be brute-forced.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        workspace: str,
        role: str,
        description: str = "",
        *,
        expires_at: int | None = None,
        run_id: str | None = None,
    ) -> tuple[TokenInfo, str]:
        """Store a new token; returns its record and the clear token (shown once)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        info = TokenInfo(
            id=secrets.token_hex(6),
            workspace=workspace,
            role=role,
            created_at=now_ms(),
            description=description,
            expires_at=expires_at,
            run_id=run_id,
        )
        with self.db.transaction() as conn:
            conn.execute(
                insert(t).values(
                    id=info.id,
                    token_hash=hash_token(token),
                    workspace=info.workspace,
                    role=info.role,
                    description=info.description,
                    created_at=info.created_at,
                    expires_at=info.expires_at,
                    run_id=info.run_id,
                )
            )
        return info, token

    def find(self, token: str) -> TokenInfo | None:
        """The token's record (revoked or not), or None for a token never issued."""
        with self.db.transaction(write=False) as conn:
            row = conn.execute(select(t).where(t.c.token_hash == hash_token(token))).first()
        return None if row is None else _info(row)

    def get(self, token_id: str) -> TokenInfo:
        with self.db.transaction(write=False) as conn:
            row = conn.execute(select(t).where(t.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"Token {token_id!r} does not exist; see `cumulo token list`.")
        return _info(row)

    def revoke_for_runs(self, run_ids: list[str]) -> int:
        """Revoke the live tokens of these jobs' runs; returns how many were live."""
        return self._revoke_where(t.c.run_id.in_(run_ids)) if run_ids else 0

    def live_job_tokens(self) -> list[TokenInfo]:
        """Job tokens not yet revoked (the scheduler revokes those of ended jobs)."""
        q = select(t).where(t.c.run_id.is_not(None), t.c.revoked_at.is_(None))
        with self.db.transaction(write=False) as conn:
            return [_info(r) for r in conn.execute(q)]

    def list(self, workspace: str | None = None, include_revoked: bool = False) -> list[TokenInfo]:
        q = select(t).order_by(t.c.created_at, t.c.id)
        if workspace is not None:
            q = q.where(t.c.workspace == workspace)
        if not include_revoked:
            q = q.where(t.c.revoked_at.is_(None))
        with self.db.transaction(write=False) as conn:
            return [_info(r) for r in conn.execute(q)]

    def revoke(self, token_id: str) -> TokenInfo:
        """Revoke a token for good; revoking a revoked token changes nothing."""
        self._revoke_where(t.c.id == token_id)
        with self.db.transaction(write=False) as conn:
            row = conn.execute(select(t).where(t.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"Token {token_id!r} does not exist; see `cumulo token list`.")
        return _info(row)

    def _revoke_where(self, condition: ColumnElement[bool]) -> int:
        with self.db.transaction() as conn:
            done = conn.execute(
                update(t).where(condition, t.c.revoked_at.is_(None)).values(revoked_at=now_ms())
            )
        return int(done.rowcount or 0)


def _info(row: Row[object]) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        workspace=row.workspace,
        role=row.role,
        created_at=row.created_at,
        description=row.description,
        revoked_at=row.revoked_at,
        expires_at=row.expires_at,
        run_id=row.run_id,
    )
