"""Sweeps and their trials in the metadata store.

A driver takes a running sweep with a lease (``store/driver_leases.py``); a
trial number is claimed by inserting its row, which the unique key lets one
writer win, so a sweep never runs a number twice.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Row, and_, insert, select, update

from cumulo.core.entities import now_ms
from cumulo.core.errors import Conflict, NotFound
from cumulo.core.sweeps import SweepInfo, SweepSpec, TrialInfo
from cumulo.store import driver_leases as leases
from cumulo.store import schema as t
from cumulo.store import schema_sweeps as s
from cumulo.store.db import Database
from cumulo.store.driver_leases import RUNNING
from cumulo.store.scoped import WorkspaceIds

_JSON = (
    "params",
    "internal",
    "system_attrs",
    "objective_values",
)  # trial columns stored as JSON text


def _dump(value: Any) -> str:
    return orjson.dumps(value).decode()


class SweepStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._workspace_id = WorkspaceIds()

    # ----------------------------------------------------------------- sweeps
    def create(
        self,
        workspace: str,
        run_id: str,
        experiment_id: int,
        spec: SweepSpec,
        job_config: dict[str, Any],
    ) -> SweepInfo:
        now = now_ms()
        with self.db.transaction() as conn:
            conn.execute(
                insert(s.sweeps).values(
                    run_id=run_id,
                    workspace_id=self._workspace_id(conn, workspace),
                    experiment_id=experiment_id,
                    spec=_dump(spec.to_dict()),
                    job_config=_dump(job_config),
                    state=RUNNING,
                    created_at=now,
                    updated_at=now,
                )
            )
        return self.get(workspace, run_id)

    def _select(self) -> Any:
        return select(s.sweeps, t.workspaces.c.name.label("workspace_name")).join(
            t.workspaces, t.workspaces.c.id == s.sweeps.c.workspace_id
        )

    def get(self, workspace: str, run_id: str) -> SweepInfo:
        with self.db.transaction(write=False) as conn:
            row = conn.execute(
                self._select().where(
                    s.sweeps.c.run_id == run_id,
                    s.sweeps.c.workspace_id == self._workspace_id(conn, workspace),
                )
            ).first()
        if row is None:
            raise NotFound(f"Run {run_id} is not a sweep.")
        return _sweep(row)

    def acquire(self, owner: str, ttl_ms: int, limit: int = 50) -> list[SweepInfo]:
        """The running sweeps ``owner`` drives now: its own, and those whose lease ran out."""
        rows = leases.acquire(self.db, s.sweeps, self._select(), owner, ttl_ms, limit)
        return [_sweep(row) for row in rows]

    def release(self, owner: str) -> None:
        """Give up ``owner``'s leases, so another driver takes its sweeps over at once."""
        leases.release(self.db, s.sweeps, owner)

    def finish(self, sweep_id: int) -> None:
        leases.finish(self.db, s.sweeps, sweep_id)

    # ----------------------------------------------------------------- trials
    def trials(self, sweep_id: int) -> list[TrialInfo]:
        tbl = s.sweep_trials
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                select(tbl).where(tbl.c.sweep_id == sweep_id).order_by(tbl.c.number)
            ).all()
        return [
            TrialInfo(
                number=r.number,
                params=orjson.loads(r.params),
                internal=orjson.loads(r.internal),
                system_attrs=orjson.loads(r.system_attrs),
                state=r.state,
                run_id=r.run_id,
                value=r.value,
                values=None
                if r.objective_values is None
                else tuple(orjson.loads(r.objective_values)),
            )
            for r in rows
        ]

    def claim_trial(self, sweep_id: int, trial: TrialInfo) -> bool:
        """Insert the trial's row; False if its number was claimed already."""
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    insert(s.sweep_trials).values(
                        sweep_id=sweep_id,
                        number=trial.number,
                        params=_dump(trial.params),
                        internal=_dump(trial.internal),
                        system_attrs=_dump(trial.system_attrs),
                        state=trial.state,
                        created_at=now_ms(),
                    )
                )
            return True
        except Conflict:
            return False

    def update_trial(self, sweep_id: int, number: int, **values: Any) -> None:
        tbl = s.sweep_trials
        with self.db.transaction() as conn:
            conn.execute(
                update(tbl)
                .where(and_(tbl.c.sweep_id == sweep_id, tbl.c.number == number))
                .values(
                    **{k: _dump(v) if k in _JSON else v for k, v in values.items()},
                )
            )


def _sweep(row: Row[Any]) -> SweepInfo:
    return SweepInfo(
        id=row.id,
        run_id=row.run_id,
        workspace=row.workspace_name,
        experiment_id=row.experiment_id,
        spec=SweepSpec.parse(orjson.loads(row.spec)),
        job_config=orjson.loads(row.job_config),
        state=row.state,
        created_at=row.created_at,
    )
