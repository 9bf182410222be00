"""The managed Ray heads: one record per cluster (workspace + target), with a lease.

A process claims the record only while no live one exists (none, or its lease
ran out): an ``INSERT`` that the unique key lets one writer win, or a
compare-and-set ``UPDATE`` of the expired row. Its owner renews the lease while
it runs the head; every other process reads the record to use the head's address.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from cumulo.core.entities import now_ms
from cumulo.core.errors import Conflict
from cumulo.store import schema_jobs as j
from cumulo.store.db import Database
from cumulo.store.scoped import WorkspaceIds

_FIELDS = ("owner", "lease_expires_at", "address", "host", "pid", "start")


class RayHeadStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._workspace_id = WorkspaceIds()

    def read(self, workspace: str, target: str) -> dict[str, Any] | None:
        """The head's record (``owner``, ``lease_expires_at``, ``address``...), or None."""
        tbl = j.ray_heads
        with self.db.transaction(write=False) as conn:
            row = conn.execute(
                select(*(tbl.c[f] for f in _FIELDS)).where(*self._where(conn, workspace, target))
            ).first()
        return None if row is None else dict(row._mapping)

    def claim(self, workspace: str, target: str, owner: str, ttl_ms: int) -> bool:
        """Make ``owner`` the head's owner unless another holds a live lease (address cleared)."""
        tbl = j.ray_heads
        now = now_ms()
        try:
            with self.db.transaction() as conn:
                where = self._where(conn, workspace, target)
                seen = conn.execute(select(tbl.c.owner, tbl.c.lease_expires_at).where(*where))
                row = seen.first()
                if row is None:
                    conn.execute(
                        insert(tbl).values(
                            workspace_id=self._workspace_id(conn, workspace),
                            target=target,
                            owner=owner,
                            lease_expires_at=now + ttl_ms,
                        )
                    )
                    return True
                if row.lease_expires_at > now and row.owner != owner:
                    return False
                taken = conn.execute(
                    update(tbl)
                    .where(
                        *where,
                        tbl.c.owner == row.owner,
                        tbl.c.lease_expires_at == row.lease_expires_at,
                    )
                    .values(
                        owner=owner,
                        lease_expires_at=now + ttl_ms,
                        address=None,  # others wait until the new owner publishes it
                        host=None,
                        pid=None,
                        start=None,
                    )
                )
                return taken.rowcount == 1
        except Conflict:  # another process inserted the record first
            return False

    def publish(
        self,
        workspace: str,
        target: str,
        owner: str,
        ttl_ms: int,
        *,
        address: str,
        host: str,
        pid: int,
        start: int | None,
    ) -> bool:
        """Record where the owner's head runs; False if ``owner`` no longer owns it."""
        return self._owned(
            workspace, target, owner, ttl_ms, address=address, host=host, pid=pid, start=start
        )

    def renew(self, workspace: str, target: str, owner: str, ttl_ms: int) -> bool:
        return self._owned(workspace, target, owner, ttl_ms)

    def release(self, workspace: str, target: str, owner: str | None) -> bool:
        """Forget the head (only if ``owner`` owns it; any owner's with None)."""
        tbl = j.ray_heads
        with self.db.transaction() as conn:
            where = self._where(conn, workspace, target)
            if owner is not None:
                where.append(tbl.c.owner == owner)
            return conn.execute(delete(tbl).where(*where)).rowcount > 0

    def _owned(self, workspace: str, target: str, owner: str, ttl_ms: int, **values: Any) -> bool:
        tbl = j.ray_heads
        with self.db.transaction() as conn:
            where = self._where(conn, workspace, target)
            done = conn.execute(
                update(tbl)
                .where(*where, tbl.c.owner == owner)
                .values(lease_expires_at=now_ms() + ttl_ms, **values)
            )
            return done.rowcount == 1

    def _where(self, conn: Connection, workspace: str, target: str) -> list[Any]:
        tbl = j.ray_heads
        return [tbl.c.workspace_id == self._workspace_id(conn, workspace), tbl.c.target == target]
