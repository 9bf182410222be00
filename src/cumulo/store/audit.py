"""The audit log: one row per write and per refused request, newest read first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, delete, insert, select

from cumulo.core.entities import AuditEntry
from cumulo.store.db import Database
from cumulo.store.schema_auth import audit_log as a


class AuditStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append(self, entries: Sequence[AuditEntry]) -> None:
        """Store entries in one transaction (the server batches them)."""
        if not entries:
            return
        rows = [e.to_dict() for e in entries]
        for row in rows:
            row.pop("id")
        with self.db.transaction() as conn:
            conn.execute(insert(a), rows)

    def forget_before(self, at_ms: int) -> int:
        """Delete entries older than ``at_ms``; returns how many."""
        with self.db.transaction() as conn:
            return int(conn.execute(delete(a).where(a.c.at < at_ms)).rowcount or 0)

    def list(
        self,
        workspace: str | None,
        *,
        limit: int = 100,
        before: int | None = None,
        refused_only: bool = False,
    ) -> list[AuditEntry]:
        """Entries of ``workspace`` (None: every workspace), newest first, below id ``before``."""
        q = select(a).order_by(a.c.id.desc()).limit(limit)
        if workspace is not None:
            q = q.where(a.c.workspace == workspace)
        if before is not None:
            q = q.where(a.c.id < before)
        if refused_only:
            q = q.where(a.c.status.in_((401, 403, 429)))
        with self.db.transaction(write=False) as conn:
            return [_entry(r) for r in conn.execute(q)]


def _entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        workspace=row.workspace,
        token_id=row.token_id,
        client=row.client,
        method=row.method,
        route=row.route,
        target=row.target,
        status=row.status,
        outcome=row.outcome,
    )
