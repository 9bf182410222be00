"""The leases drivers hold on the rows they advance: sweeps and pipeline runs.

Such a table has ``id``, ``state`` (``running`` until the driver finishes the
row, then ``done``), ``lease_owner``, ``lease_expires_at`` and ``updated_at``.
A driver takes a running row whose lease is free, its own, or ran out, by
compare-and-set on the owner and expiry it read, so of two drivers one wins;
it renews its own lease only once half of it has run, so a pass over rows it
holds with time to spare writes nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Select, Table, or_, update

from cumulo.core.entities import now_ms
from cumulo.store.db import Database

RUNNING, DONE = "running", "done"


def _same(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def acquire(
    db: Database, table: Table, query: Select[Any], owner: str, ttl_ms: int, limit: int
) -> list[Row[Any]]:
    """The rows of ``query`` (over ``table``) that are running and that ``owner`` drives now."""
    now = now_ms()
    c = table.c
    free = or_(c.lease_owner.is_(None), c.lease_owner == owner, c.lease_expires_at < now)
    with db.transaction(write=False) as conn:
        rows = conn.execute(query.where(c.state == RUNNING, free).limit(limit)).all()
    out = []
    for row in rows:
        if row.lease_owner == owner and row.lease_expires_at - now > ttl_ms // 2:
            out.append(row)  # held, with time to spare: no write this pass
            continue
        with db.transaction() as conn:
            taken = conn.execute(
                update(table)
                .where(
                    c.id == row.id,
                    c.state == RUNNING,
                    # compare-and-set: nobody took it since it was read
                    _same(c.lease_owner, row.lease_owner),
                    _same(c.lease_expires_at, row.lease_expires_at),
                )
                .values(lease_owner=owner, lease_expires_at=now + ttl_ms, updated_at=now)
            )
        if taken.rowcount == 1:
            out.append(row)
    return out


def release(db: Database, table: Table, owner: str) -> None:
    """Give up ``owner``'s leases, so another driver takes its rows over at once."""
    with db.transaction() as conn:
        conn.execute(
            update(table)
            .where(table.c.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None)
        )


def finish(db: Database, table: Table, row_id: int) -> None:
    """The row is done: no driver takes it again."""
    with db.transaction() as conn:
        conn.execute(
            update(table)
            .where(table.c.id == row_id)
            .values(state=DONE, lease_owner=None, lease_expires_at=None, updated_at=now_ms())
        )
