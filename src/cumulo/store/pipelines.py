"""Pipeline runs, their steps, published pipelines, endpoints and schedules in the store.

A driver takes a running pipeline with a lease (``store/driver_leases.py``); a
step moves on only from the state its caller read, so of two drivers one wins.
A schedule's tick is claimed by inserting its firing row.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Row, and_, desc, insert, or_, select, update

from cumulo.core.entities import now_ms
from cumulo.core.errors import AlreadyExists, Conflict, NotFound
from cumulo.core.pipelines import (
    DONE_STATES,
    WAITING,
    PipelineRunInfo,
    PipelineSpec,
    PublishedPipelineInfo,
    ScheduleInfo,
    StepState,
)
from cumulo.store import driver_leases as leases
from cumulo.store import schema as t
from cumulo.store import schema_pipelines as p
from cumulo.store.db import Database
from cumulo.store.driver_leases import RUNNING
from cumulo.store.scoped import WorkspaceIds


def _dump(value: Any) -> str:
    return orjson.dumps(value).decode()


class PipelineStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._workspace_id = WorkspaceIds()

    # ------------------------------------------------------------------ runs
    def create_run(
        self,
        workspace: str,
        run_id: str,
        experiment_id: int,
        spec: PipelineSpec,
        parameters: dict[str, Any],
        template: dict[str, Any],
        resume_of: str | None,
    ) -> PipelineRunInfo:
        now = now_ms()
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            created = conn.execute(
                insert(p.pipeline_runs).values(
                    run_id=run_id,
                    workspace_id=ws_id,
                    experiment_id=experiment_id,
                    spec=_dump(spec.to_dict()),
                    parameters=_dump(parameters),
                    template=_dump(template),
                    resume_of=resume_of,
                    state=RUNNING,
                    created_at=now,
                    updated_at=now,
                )
            )
            assert created.inserted_primary_key is not None
            pid = created.inserted_primary_key[0]
            for position, name in enumerate(spec.order()):
                conn.execute(
                    insert(p.pipeline_steps).values(
                        pipeline_run_id=pid,
                        workspace_id=ws_id,
                        experiment_id=experiment_id,
                        position=position,
                        name=name,
                        state=WAITING,
                        reason="",
                    )
                )
        return self.get_run(workspace, run_id)

    def _select(self) -> Any:
        return select(p.pipeline_runs, t.workspaces.c.name.label("workspace_name")).join(
            t.workspaces, t.workspaces.c.id == p.pipeline_runs.c.workspace_id
        )

    def get_run(self, workspace: str, run_id: str) -> PipelineRunInfo:
        with self.db.transaction(write=False) as conn:
            row = conn.execute(
                self._select().where(
                    p.pipeline_runs.c.run_id == run_id,
                    p.pipeline_runs.c.workspace_id == self._workspace_id(conn, workspace),
                )
            ).first()
        if row is None:
            raise NotFound(f"Run {run_id} is not a pipeline run.")
        return _run(row)

    def acquire(self, owner: str, ttl_ms: int, limit: int = 50) -> list[PipelineRunInfo]:
        """The running pipelines ``owner`` drives now: its own, and those whose lease ran out."""
        rows = leases.acquire(self.db, p.pipeline_runs, self._select(), owner, ttl_ms, limit)
        return [_run(row) for row in rows]

    def release(self, owner: str) -> None:
        leases.release(self.db, p.pipeline_runs, owner)

    def finish(self, pipeline_run_id: int) -> None:
        leases.finish(self.db, p.pipeline_runs, pipeline_run_id)

    # ----------------------------------------------------------------- steps
    def steps(self, pipeline_run_id: int) -> list[StepState]:
        s = p.pipeline_steps
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                select(s).where(s.c.pipeline_run_id == pipeline_run_id).order_by(s.c.position)
            ).all()
        return [_step(r) for r in rows]

    def move_step(self, pipeline_run_id: int, name: str, expect: str, **values: Any) -> bool:
        """Set the step's columns if it is still in state ``expect``; False otherwise."""
        s = p.pipeline_steps
        for k in ("parts", "outputs"):
            if k in values and values[k] is not None:
                values[k] = _dump(values[k])
        with self.db.transaction() as conn:
            done = conn.execute(
                update(s)
                .where(
                    s.c.pipeline_run_id == pipeline_run_id, s.c.name == name, s.c.state == expect
                )
                .values(**values)
            )
        return done.rowcount == 1

    def find_reusable(self, workspace: str, fingerprint: str) -> StepState | None:
        """The latest completed step of this workspace with ``fingerprint`` and its outputs."""
        s = p.pipeline_steps
        with self.db.transaction(write=False) as conn:
            row = conn.execute(
                select(s)
                .where(
                    s.c.workspace_id == self._workspace_id(conn, workspace),
                    s.c.fingerprint == fingerprint,
                    s.c.state.in_(DONE_STATES),
                    s.c.outputs.is_not(None),
                )
                .order_by(desc(s.c.ended_at), desc(s.c.id))
                .limit(1)
            ).first()
        return None if row is None else _step(row)

    def last_completed(self, workspace: str, experiment_id: int, name: str) -> StepState | None:
        """The latest completed step named ``name`` in the experiment (to say what changed)."""
        s = p.pipeline_steps
        with self.db.transaction(write=False) as conn:
            row = conn.execute(
                select(s)
                .where(
                    s.c.workspace_id == self._workspace_id(conn, workspace),
                    s.c.experiment_id == experiment_id,
                    s.c.name == name,
                    s.c.state.in_(DONE_STATES),
                )
                .order_by(desc(s.c.ended_at), desc(s.c.id))
                .limit(1)
            ).first()
        return None if row is None else _step(row)

    # ------------------------------------------------------------- published
    def publish(
        self,
        workspace: str,
        pipeline_id: str,
        name: str,
        version: str,
        description: str,
        spec: PipelineSpec,
    ) -> PublishedPipelineInfo:
        now = now_ms()
        try:
            with self.db.transaction() as conn:
                ws_id = self._workspace_id(conn, workspace)
                conn.execute(
                    insert(p.published_pipelines).values(
                        id=pipeline_id,
                        workspace_id=ws_id,
                        name=name,
                        version=version,
                        description=description,
                        spec=_dump(spec.to_dict()),
                        created_at=now,
                    )
                )
                e = p.pipeline_endpoints
                has = conn.execute(
                    select(e.c.id).where(e.c.workspace_id == ws_id, e.c.name == name)
                ).first()
                if has is None:  # the first version of a name is its endpoint's default
                    conn.execute(
                        insert(e).values(
                            workspace_id=ws_id,
                            name=name,
                            default_pipeline_id=pipeline_id,
                            updated_at=now,
                        )
                    )
        except Conflict:
            raise AlreadyExists(
                f"Pipeline {name!r} version {version!r} is published already; "
                "publish it under another version."
            ) from None
        return self.get_published(workspace, pipeline_id)

    def _published(self) -> Any:
        pp, e = p.published_pipelines, p.pipeline_endpoints
        return (
            select(
                pp,
                t.workspaces.c.name.label("workspace_name"),
                (e.c.default_pipeline_id == pp.c.id).label("is_default"),
            )
            .join(t.workspaces, t.workspaces.c.id == pp.c.workspace_id)
            .outerjoin(e, and_(e.c.workspace_id == pp.c.workspace_id, e.c.name == pp.c.name))
        )

    def get_published(self, workspace: str, pipeline_id: str) -> PublishedPipelineInfo:
        pp = p.published_pipelines
        with self.db.transaction(write=False) as conn:
            row = conn.execute(
                self._published().where(
                    pp.c.id == pipeline_id,
                    pp.c.workspace_id == self._workspace_id(conn, workspace),
                )
            ).first()
        if row is None:
            raise NotFound(f"No published pipeline {pipeline_id!r} in workspace {workspace!r}.")
        return _published(row)

    def list_published(
        self, workspace: str, name: str | None = None
    ) -> list[PublishedPipelineInfo]:
        pp = p.published_pipelines
        with self.db.transaction(write=False) as conn:
            q = self._published().where(pp.c.workspace_id == self._workspace_id(conn, workspace))
            if name is not None:
                q = q.where(pp.c.name == name)
            rows = conn.execute(q.order_by(pp.c.name, pp.c.created_at)).all()
        return [_published(r) for r in rows]

    def set_default(self, workspace: str, name: str, pipeline_id: str) -> None:
        e = p.pipeline_endpoints
        with self.db.transaction() as conn:
            done = conn.execute(
                update(e)
                .where(e.c.workspace_id == self._workspace_id(conn, workspace), e.c.name == name)
                .values(default_pipeline_id=pipeline_id, updated_at=now_ms())
            )
        if done.rowcount != 1:
            raise NotFound(f"No pipeline endpoint {name!r} in workspace {workspace!r}.")

    # ------------------------------------------------------------- schedules
    def create_schedule(self, info: ScheduleInfo) -> ScheduleInfo:
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    insert(p.pipeline_schedules).values(
                        workspace_id=self._workspace_id(conn, info.workspace),
                        name=info.name,
                        pipeline_id=info.pipeline_id,
                        experiment_name=info.experiment_name,
                        parameters=_dump(info.parameters),
                        frequency=info.frequency,
                        interval=info.interval,
                        start_time=info.start_time,
                        cron=info.cron,
                        enabled=info.enabled,
                        next_fire_at=info.next_fire_at,
                        on_dataset=info.on_dataset,
                        dataset_version=info.dataset_version,
                        created_at=now_ms(),
                    )
                )
        except Conflict:
            raise AlreadyExists(
                f"Schedule {info.name!r} exists already in workspace {info.workspace!r}."
            ) from None
        return self.get_schedule(info.workspace, info.name)

    def _schedules(self) -> Any:
        sc = p.pipeline_schedules
        return select(sc, t.workspaces.c.name.label("workspace_name")).join(
            t.workspaces, t.workspaces.c.id == sc.c.workspace_id
        )

    def get_schedule(self, workspace: str, name: str) -> ScheduleInfo:
        sc = p.pipeline_schedules
        with self.db.transaction(write=False) as conn:
            row = conn.execute(
                self._schedules().where(
                    sc.c.workspace_id == self._workspace_id(conn, workspace), sc.c.name == name
                )
            ).first()
        if row is None:
            raise NotFound(f"No schedule {name!r} in workspace {workspace!r}.")
        return _schedule(row)

    def list_schedules(self, workspace: str) -> list[ScheduleInfo]:
        sc = p.pipeline_schedules
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                self._schedules()
                .where(sc.c.workspace_id == self._workspace_id(conn, workspace))
                .order_by(sc.c.name)
            ).all()
        return [_schedule(r) for r in rows]

    def due_schedules(self, at: int, limit: int = 50) -> list[tuple[int, ScheduleInfo]]:
        """Enabled schedules whose next tick is at or before ``at``, with their row ids."""
        sc = p.pipeline_schedules
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                self._schedules()
                .where(sc.c.enabled.is_(True), sc.c.next_fire_at <= at)
                .order_by(sc.c.next_fire_at)
                .limit(limit)
            ).all()
        return [(r.id, _schedule(r)) for r in rows]

    def dataset_schedules(self) -> list[tuple[int, ScheduleInfo]]:
        """Enabled schedules that fire on a dataset's new versions, with their row ids."""
        sc = p.pipeline_schedules
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                self._schedules()
                .where(sc.c.enabled.is_(True), sc.c.on_dataset.is_not(None))
                .order_by(sc.c.id)
            ).all()
        return [(r.id, _schedule(r)) for r in rows]

    def advance_dataset(self, schedule_id: int, seen: int | None, version: int) -> bool:
        """Record ``version`` as fired for, if nobody moved it on since ``seen`` was read."""
        sc = p.pipeline_schedules
        was = sc.c.dataset_version.is_(None) if seen is None else sc.c.dataset_version == seen
        with self.db.transaction() as conn:
            done = conn.execute(
                update(sc).where(sc.c.id == schedule_id, was).values(dataset_version=version)
            )
        return done.rowcount == 1

    def update_schedule(self, workspace: str, name: str, **values: Any) -> ScheduleInfo:
        sc = p.pipeline_schedules
        with self.db.transaction() as conn:
            done = conn.execute(
                update(sc)
                .where(sc.c.workspace_id == self._workspace_id(conn, workspace), sc.c.name == name)
                .values(**values)
            )
        if done.rowcount != 1:
            raise NotFound(f"No schedule {name!r} in workspace {workspace!r}.")
        return self.get_schedule(workspace, name)

    def advance(self, schedule_id: int, seen_next: int, next_fire_at: int | None) -> bool:
        """Move the schedule's next tick on, if nobody did since ``seen_next`` was read."""
        sc = p.pipeline_schedules
        with self.db.transaction() as conn:
            done = conn.execute(
                update(sc)
                .where(sc.c.id == schedule_id, sc.c.next_fire_at == seen_next)
                .values(next_fire_at=next_fire_at)
            )
        return done.rowcount == 1

    def claim_firing(self, schedule_id: int, tick: int, owner: str) -> bool:
        """Insert the tick's firing; False if another process claimed it first."""
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    insert(p.schedule_firings).values(
                        schedule_id=schedule_id, tick=tick, owner=owner, claimed_at=now_ms()
                    )
                )
            return True
        except Conflict:
            return False

    def unsubmitted_firings(self, older_than: int) -> list[tuple[int, int, int]]:
        """(schedule id, tick, claimed at) of firings claimed but never submitted."""
        f = p.schedule_firings
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                select(f.c.schedule_id, f.c.tick, f.c.claimed_at).where(
                    f.c.run_id.is_(None), f.c.claimed_at < older_than
                )
            ).all()
        return [(r[0], r[1], r[2]) for r in rows]

    def retake_firing(self, schedule_id: int, tick: int, owner: str, claimed_at: int) -> bool:
        """Take over a firing whose claimer stopped before submitting (compare-and-set)."""
        f = p.schedule_firings
        with self.db.transaction() as conn:
            done = conn.execute(
                update(f)
                .where(
                    f.c.schedule_id == schedule_id,
                    f.c.tick == tick,
                    f.c.run_id.is_(None),
                    f.c.claimed_at == claimed_at,
                )
                .values(owner=owner, claimed_at=now_ms())
            )
        return done.rowcount == 1

    def fired(self, schedule_id: int, tick: int, run_id: str) -> None:
        f, sc = p.schedule_firings, p.pipeline_schedules
        with self.db.transaction() as conn:
            conn.execute(
                update(f)
                .where(f.c.schedule_id == schedule_id, f.c.tick == tick)
                .values(run_id=run_id)
            )
            conn.execute(
                update(sc)
                .where(
                    sc.c.id == schedule_id,
                    or_(sc.c.last_fired_at.is_(None), sc.c.last_fired_at <= tick),
                )
                .values(last_fired_at=tick, last_run_id=run_id)
            )

    def firings(self, workspace: str, name: str) -> list[tuple[int, str | None]]:
        """(tick, run id) of every firing of a schedule, oldest first."""
        f, sc = p.schedule_firings, p.pipeline_schedules
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                select(f.c.tick, f.c.run_id)
                .join(sc, sc.c.id == f.c.schedule_id)
                .where(sc.c.workspace_id == self._workspace_id(conn, workspace), sc.c.name == name)
                .order_by(f.c.tick)
            ).all()
        return [(r[0], r[1]) for r in rows]

    def schedule_by_id(self, schedule_id: int) -> ScheduleInfo:
        sc = p.pipeline_schedules
        with self.db.transaction(write=False) as conn:
            row = conn.execute(self._schedules().where(sc.c.id == schedule_id)).first()
        if row is None:
            raise NotFound(f"Schedule {schedule_id} is gone.")
        return _schedule(row)


def _run(row: Row[Any]) -> PipelineRunInfo:
    return PipelineRunInfo(
        id=row.id,
        run_id=row.run_id,
        workspace=row.workspace_name,
        experiment_id=row.experiment_id,
        spec=PipelineSpec.parse(orjson.loads(row.spec)),
        parameters=orjson.loads(row.parameters),
        template=orjson.loads(row.template),
        state=row.state,
        resume_of=row.resume_of,
        created_at=row.created_at,
    )


def _step(row: Row[Any]) -> StepState:
    return StepState(
        name=row.name,
        state=row.state,
        run_id=row.run_id,
        fingerprint=row.fingerprint,
        parts=orjson.loads(row.parts) if row.parts else None,
        outputs=orjson.loads(row.outputs) if row.outputs else None,
        reused_from=row.reused_from,
        reason=row.reason,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


def _published(row: Row[Any]) -> PublishedPipelineInfo:
    return PublishedPipelineInfo(
        id=row.id,
        workspace=row.workspace_name,
        name=row.name,
        version=row.version,
        description=row.description,
        spec=orjson.loads(row.spec),
        created_at=row.created_at,
        is_default=bool(row.is_default),
    )


def _schedule(row: Row[Any]) -> ScheduleInfo:
    return ScheduleInfo(
        workspace=row.workspace_name,
        name=row.name,
        pipeline_id=row.pipeline_id,
        experiment_name=row.experiment_name,
        parameters=orjson.loads(row.parameters),
        frequency=row.frequency,
        interval=row.interval,
        start_time=row.start_time,
        cron=row.cron,
        enabled=bool(row.enabled),
        next_fire_at=row.next_fire_at,
        last_fired_at=row.last_fired_at,
        last_run_id=row.last_run_id,
        created_at=row.created_at,
        on_dataset=row.on_dataset,
        dataset_version=row.dataset_version,
    )
