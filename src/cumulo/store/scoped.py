"""The base of the metadata store: one engine, and queries scoped by workspace.

Every public method of the store opens one transaction through
``Database.transaction`` and resolves the workspace first (``_workspace_id``),
then reaches runs only through ``_run_row`` and experiments only through
``_experiment_row`` (or, to number a new run, an update with the same scope), all
scoped by workspace: no query can cross workspaces.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, or_, select

from cumulo.core.errors import InvalidState, NotFound
from cumulo.store import schema as t
from cumulo.store.db import Database
from cumulo.store.prepared import Prepared

CHUNK = 500  # ids per IN (...) clause

# The statements of every request, built once with their values as parameters: building
# a statement with its values in it costs several times more than running it on SQLite.
_RUN_ROW = Prepared(
    select(t.runs).where(
        t.runs.c.id == bindparam("run_id"), t.runs.c.workspace_id == bindparam("ws_id")
    )
)
# A run's row by column name (read from the driver: ``deleted`` may be 0 or 1).
RunRow = namedtuple("RunRow", [c.key for c in t.runs.c])  # type: ignore[misc]
_EXPERIMENT_ROW = select(t.experiments).where(
    t.experiments.c.id == bindparam("exp_id"), t.experiments.c.workspace_id == bindparam("ws_id")
)


class WorkspaceIds:
    """A workspace's id by its name, looked up once per store (names never change)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def __call__(self, conn: Connection, name: str) -> int:
        cached = self._ids.get(name)
        if cached is not None:
            return cached
        ws_id = conn.execute(select(t.workspaces.c.id).where(t.workspaces.c.name == name)).scalar()
        if ws_id is None:
            raise NotFound(
                f"Workspace {name!r} does not exist; create it with "
                f"`cumulo workspace create {name}` or Workspace.create({name!r})."
            )
        self._ids[name] = int(ws_id)
        return int(ws_id)


class ScopedStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._workspace_id = WorkspaceIds()
        self._insert = db.upsert_insert()
        self._latest_upsert = Prepared(self._build_latest_upsert())
        self._upserts: dict[str, Prepared] = {}

    def _build_latest_upsert(self) -> Any:
        """Upsert of ``latest_metrics`` that keeps the point with the highest (step, time)."""
        lm = t.latest_metrics
        stmt = self._insert(lm)
        newer = or_(
            stmt.excluded.step > lm.c.step,
            and_(stmt.excluded.step == lm.c.step, stmt.excluded.timestamp >= lm.c.timestamp),
        )
        return stmt.on_conflict_do_update(
            index_elements=[lm.c.run_id, lm.c.key],
            set_={
                "value": stmt.excluded.value,
                "is_nan": stmt.excluded.is_nan,
                "step": stmt.excluded.step,
                "timestamp": stmt.excluded.timestamp,
            },
            where=newer,
        )

    def _key_value_upsert(self, tbl: Any) -> Prepared:
        """Upsert of a run's ``(run_id, key) -> value`` table (tags, properties), built once."""
        found = self._upserts.get(tbl.name)
        if found is None:
            stmt = self._insert(tbl)
            found = self._upserts[tbl.name] = Prepared(
                stmt.on_conflict_do_update(
                    index_elements=[tbl.c.run_id, tbl.c.key], set_={"value": stmt.excluded.value}
                )
            )
        return found

    # ---------------------------------------------------------------- scoping
    def _run_row(self, conn: Connection, ws_id: int, run_id: str) -> Any:
        """The run's ``RunRow``."""
        row = _RUN_ROW.first(conn, {"run_id": run_id, "ws_id": ws_id})
        if row is None:
            raise NotFound(f"Run {run_id!r} does not exist in this workspace.")
        return RunRow._make(row)

    def _live_run(self, conn: Connection, ws_id: int, run_id: str) -> Any:
        row = self._run_row(conn, ws_id, run_id)
        if row.deleted:
            raise InvalidState(
                f"Run {run_id} is deleted; restore it before logging to it (it must be active)."
            )
        return row

    def _experiment_row(self, conn: Connection, ws_id: int, experiment_id: int) -> Row[Any]:
        row = conn.execute(_EXPERIMENT_ROW, {"exp_id": experiment_id, "ws_id": ws_id}).first()
        if row is None:
            raise experiment_not_found(experiment_id)
        return row

    def _purge_runs(self, conn: Connection, run_ids: list[str]) -> None:
        raise NotImplementedError


def experiment_not_found(experiment_id: int) -> NotFound:
    return NotFound(f"Experiment {experiment_id} does not exist in this workspace.")


def chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]
