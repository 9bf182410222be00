"""The jobs store: jobs and their leases, logs, compute targets, pool nodes,
environments and snapshots.

Leases make scheduling safe with several processes: a job is taken with a
conditional ``UPDATE ... WHERE state = 'queued'`` (one writer wins), and its
owner renews ``lease_expires_at`` while it looks after the job; a job whose
lease ran out is taken over by another scheduler, which finds its real state.

Every later change a scheduler makes is a compare-and-set too: it passes the
copy it acted on (``expect=as_seen(job)``) and the change applies only while
the row still has that state, lease owner, attempt and handle. False means
someone else moved the job; the caller then does nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, insert, or_, select, update

from cumulo.core.entities import now_ms
from cumulo.core.errors import AlreadyExists, Conflict, NotFound
from cumulo.core.jobs import (
    BuildStatus,
    ComputeTargetInfo,
    EnvironmentInfo,
    EnvironmentSpec,
    JobInfo,
    JobState,
    LogChunk,
    LogPage,
    PoolNode,
    SnapshotInfo,
)
from cumulo.store import schema as t
from cumulo.store import schema_jobs as j
from cumulo.store.db import Database
from cumulo.store.scoped import WorkspaceIds

MAX_LOG_PAGE = 5000


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._workspace_id = WorkspaceIds()

    # ------------------------------------------------------------ targets
    def create_target(
        self, workspace: str, name: str, kind: str, config: dict[str, Any]
    ) -> ComputeTargetInfo:
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            tbl = j.compute_targets
            taken = conn.execute(
                select(tbl.c.id).where(tbl.c.workspace_id == ws_id, tbl.c.name == name)
            ).first()
            if taken is not None:
                raise AlreadyExists(
                    f"Compute target {name!r} already exists; delete it first or pick another name."
                )
            now = now_ms()
            conn.execute(
                insert(tbl).values(
                    workspace_id=ws_id,
                    name=name,
                    kind=kind,
                    config=json.dumps(config),
                    created_at=now,
                )
            )
        return ComputeTargetInfo(workspace, name, kind, config, now)

    def get_target(self, workspace: str, name: str) -> ComputeTargetInfo:
        tbl = j.compute_targets
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            row = conn.execute(
                select(tbl).where(tbl.c.workspace_id == ws_id, tbl.c.name == name)
            ).first()
        if row is None:
            raise NotFound(
                f"Compute target {name!r} does not exist; create it with "
                f"ComputeTarget.create(ws, {name!r}, LocalPool(...)) or `cumulo compute create`."
            )
        return _target(workspace, row)

    def list_targets(self, workspace: str) -> list[ComputeTargetInfo]:
        tbl = j.compute_targets
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            rows = conn.execute(
                select(tbl).where(tbl.c.workspace_id == ws_id).order_by(tbl.c.name)
            ).all()
        return [_target(workspace, r) for r in rows]

    def delete_target(self, workspace: str, name: str) -> None:
        tbl = j.compute_targets
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            busy = conn.execute(
                select(func.count()).where(
                    j.jobs.c.workspace_id == ws_id,
                    j.jobs.c.target == name,
                    j.jobs.c.state != JobState.DONE.value,
                )
            ).scalar()
            if busy:
                raise Conflict(
                    f"Compute target {name!r} still has {busy} queued or running job(s); "
                    "cancel them or wait for them to end before deleting it."
                )
            gone = conn.execute(
                delete(tbl).where(tbl.c.workspace_id == ws_id, tbl.c.name == name)
            ).rowcount
            if not gone:
                raise NotFound(f"Compute target {name!r} does not exist.")

    # -------------------------------------------------------- environments
    def register_environment(
        self, workspace: str, name: str, spec: EnvironmentSpec
    ) -> EnvironmentInfo:
        """A new version when the spec differs from the latest one, else the latest."""
        tbl = j.environments
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            latest = conn.execute(
                select(tbl)
                .where(tbl.c.workspace_id == ws_id, tbl.c.name == name)
                .order_by(tbl.c.version.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.spec_hash == spec.full_hash:
                return _environment(workspace, latest)
            # A build of the same spec in any version is already known: keep its status.
            built = conn.execute(
                select(tbl.c.build_status, tbl.c.build_log)
                .where(tbl.c.build_hash == spec.build_hash)
                .order_by(tbl.c.id.desc())
                .limit(1)
            ).first()
            status = built.build_status if built is not None else BuildStatus.NOT_BUILT.value
            conn.execute(
                insert(tbl).values(
                    workspace_id=ws_id,
                    name=name,
                    version=(latest.version + 1) if latest is not None else 1,
                    spec=json.dumps(spec.to_dict()),
                    spec_hash=spec.full_hash,
                    build_hash=spec.build_hash,
                    build_status=status,
                    build_log=built.build_log if built is not None else "",
                    created_at=now_ms(),
                )
            )
            row = conn.execute(
                select(tbl)
                .where(tbl.c.workspace_id == ws_id, tbl.c.name == name)
                .order_by(tbl.c.version.desc())
                .limit(1)
            ).one()
            return _environment(workspace, row)

    def get_environment(
        self, workspace: str, name: str, version: int | None = None
    ) -> EnvironmentInfo:
        tbl = j.environments
        q = select(tbl).where(tbl.c.name == name)
        q = q.where(tbl.c.version == version) if version else q.order_by(tbl.c.version.desc())
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            row = conn.execute(q.where(tbl.c.workspace_id == ws_id).limit(1)).first()
        if row is None:
            which = f"version {version} of " if version else ""
            raise NotFound(
                f"There is no {which}environment {name!r}; register it with "
                "Environment(...).register(ws) or `cumulo env build FILE`."
            )
        return _environment(workspace, row)

    def list_environments(self, workspace: str) -> list[EnvironmentInfo]:
        tbl = j.environments
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            rows = conn.execute(
                select(tbl).where(tbl.c.workspace_id == ws_id).order_by(tbl.c.name, tbl.c.version)
            ).all()
        return [_environment(workspace, r) for r in rows]

    def set_build_status(self, build_hash: str, status: str, log: str | None = None) -> None:
        values: dict[str, Any] = {"build_status": status}
        if log is not None:
            values["build_log"] = log
        with self.db.transaction() as conn:
            conn.execute(
                update(j.environments)
                .where(j.environments.c.build_hash == build_hash)
                .values(**values)
            )

    # ----------------------------------------------------------- snapshots
    def add_snapshot(
        self, workspace: str, digest: str, size: int, files: list[dict[str, Any]]
    ) -> SnapshotInfo:
        tbl = j.snapshots
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            row = conn.execute(
                select(tbl).where(tbl.c.workspace_id == ws_id, tbl.c.hash == digest)
            ).first()
            if row is None:
                conn.execute(
                    insert(tbl).values(
                        workspace_id=ws_id,
                        hash=digest,
                        size=size,
                        file_count=len(files),
                        files=json.dumps(files),
                        created_at=now_ms(),
                    )
                )
                row = conn.execute(
                    select(tbl).where(tbl.c.workspace_id == ws_id, tbl.c.hash == digest)
                ).one()
        return _snapshot(workspace, row, with_files=True)

    def get_snapshot(self, workspace: str, digest: str) -> SnapshotInfo:
        tbl = j.snapshots
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            row = conn.execute(
                select(tbl).where(tbl.c.workspace_id == ws_id, tbl.c.hash == digest)
            ).first()
        if row is None:
            raise NotFound(f"Snapshot {digest[:12]} does not exist in workspace {workspace!r}.")
        return _snapshot(workspace, row, with_files=True)

    def list_snapshots(self, workspace: str) -> list[SnapshotInfo]:
        tbl = j.snapshots
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            rows = conn.execute(
                select(tbl).where(tbl.c.workspace_id == ws_id).order_by(tbl.c.id.desc())
            ).all()
        return [_snapshot(workspace, r, with_files=False) for r in rows]

    # ---------------------------------------------------------------- jobs
    def create_job(
        self,
        workspace: str,
        run_id: str,
        *,
        target: str,
        kind: str,
        config: dict[str, Any],
        priority: int = 0,
        max_retries: int = 0,
        submitter_role: str | None = None,
    ) -> JobInfo:
        now = now_ms()
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            conn.execute(
                insert(j.jobs).values(
                    run_id=run_id,
                    workspace_id=ws_id,
                    target=target,
                    kind=kind,
                    config=json.dumps(config),
                    state=JobState.QUEUED.value,
                    priority=priority,
                    attempts=0,
                    max_retries=max_retries,
                    submitter_role=submitter_role,
                    submitted_at=now,
                    updated_at=now,
                )
            )
            return self._jobs(conn, [j.jobs.c.run_id == run_id])[0]

    def get_job(self, workspace: str, run_id: str) -> JobInfo:
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            found = self._jobs(conn, [j.jobs.c.run_id == run_id, j.jobs.c.workspace_id == ws_id])
        if not found:
            raise NotFound(f"Run {run_id!r} is not a submitted job in workspace {workspace!r}.")
        return found[0]

    def find_job(self, run_id: str) -> JobInfo | None:
        with self.db.transaction(write=False) as conn:
            found = self._jobs(conn, [j.jobs.c.run_id == run_id])
        return found[0] if found else None

    def list_jobs(
        self,
        workspace: str | None = None,
        *,
        target: str | None = None,
        states: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        owner: str | None = None,
        limit: int | None = None,
    ) -> list[JobInfo]:
        """Jobs in queue order: higher priority first, then first submitted first."""
        with self.db.transaction(write=False) as conn:
            cond: list[Any] = []
            if workspace is not None:
                cond.append(j.jobs.c.workspace_id == self._workspace_id(conn, workspace))
            if target is not None:
                cond.append(j.jobs.c.target == target)
            if states:
                cond.append(j.jobs.c.state.in_(list(states)))
            if kinds:
                cond.append(j.jobs.c.kind.in_(list(kinds)))
            if owner is not None:
                cond.append(j.jobs.c.lease_owner == owner)
            return self._jobs(conn, cond, limit=limit)

    def lease_next(
        self,
        owner: str,
        ttl_ms: int,
        *,
        kinds: Sequence[str] | None = None,
        workspace: str | None = None,
        target: str | None = None,
        node: str | None = None,
        exclude: Sequence[str] = (),
    ) -> JobInfo | None:
        """Take the first queued job (by priority, then submission order), or None.

        ``exclude``: run ids passed over (jobs waiting for what their target has not free).
        """
        cond: list[Any] = [j.jobs.c.state == JobState.QUEUED.value]
        if kinds:
            cond.append(j.jobs.c.kind.in_(list(kinds)))
        if exclude:
            cond.append(j.jobs.c.run_id.not_in(list(exclude)))
        if target is not None:
            cond.append(j.jobs.c.target == target)
        for _ in range(5):
            with self.db.transaction() as conn:
                if workspace is not None:
                    cond.append(j.jobs.c.workspace_id == self._workspace_id(conn, workspace))
                    workspace = None
                job_id = conn.execute(
                    select(j.jobs.c.id)
                    .join(t.runs, t.runs.c.id == j.jobs.c.run_id)
                    .where(*cond, t.runs.c.status == "Queued")
                    .order_by(j.jobs.c.priority.desc(), j.jobs.c.id)
                    .limit(1)
                ).scalar()
                if job_id is None:
                    return None
                now = now_ms()
                taken = conn.execute(
                    update(j.jobs)
                    .where(j.jobs.c.id == job_id, j.jobs.c.state == JobState.QUEUED.value)
                    .values(
                        state=JobState.ACTIVE.value,
                        lease_owner=owner,
                        lease_expires_at=now + ttl_ms,
                        attempts=j.jobs.c.attempts + 1,
                        node=node,
                        handle=None,
                        updated_at=now,
                    )
                ).rowcount
                if taken:
                    return self._jobs(conn, [j.jobs.c.id == job_id])[0]
        return None

    def renew_leases(self, owner: str, ttl_ms: int, run_ids: Sequence[str] | None = None) -> int:
        now = now_ms()
        cond = [j.jobs.c.lease_owner == owner, j.jobs.c.state == JobState.ACTIVE.value]
        if run_ids is not None:
            if not run_ids:
                return 0
            cond.append(j.jobs.c.run_id.in_(list(run_ids)))
        with self.db.transaction() as conn:
            return int(
                conn.execute(
                    update(j.jobs).where(*cond).values(lease_expires_at=now + ttl_ms)
                ).rowcount
            )

    def renew_lease(self, run_id: str, ttl_ms: int, expect: Mapping[str, Any]) -> bool:
        """Extend one job's lease while the row is still as ``expect`` says."""
        cond = [j.jobs.c.run_id == run_id, *_still(expect)]
        with self.db.transaction() as conn:
            renewed = conn.execute(
                update(j.jobs).where(*cond).values(lease_expires_at=now_ms() + ttl_ms)
            ).rowcount
        return bool(renewed)

    def take_over_expired(self, owner: str, ttl_ms: int, limit: int = 50) -> list[JobInfo]:
        """Active jobs whose owner stopped renewing: this owner becomes responsible.

        One conditional UPDATE: its WHERE is checked again on each row as it is
        written (PostgreSQL re-reads a row a concurrent renewal changed), so a
        lease renewed meanwhile is never taken.
        """
        now = now_ms()
        c = j.jobs.c
        expired = and_(
            c.state == JobState.ACTIVE.value,
            or_(c.lease_expires_at.is_(None), c.lease_expires_at < now),
        )
        oldest = select(c.id).where(expired).order_by(c.id).limit(limit)
        with self.db.transaction() as conn:
            ids = (
                conn.execute(
                    update(j.jobs)
                    .where(c.id.in_(oldest), expired)
                    .values(lease_owner=owner, lease_expires_at=now + ttl_ms, updated_at=now)
                    .returning(c.id)
                )
                .scalars()
                .all()
            )
            return self._jobs(conn, [c.id.in_(list(ids))]) if ids else []

    def update_job(
        self,
        run_id: str,
        *,
        owner: str | None = None,
        state: str | None = None,
        handle: dict[str, Any] | None = None,
        release: bool = False,
        config: dict[str, Any] | None = None,
        only_state: str | None = None,
        expect: Mapping[str, Any] | None = None,
    ) -> bool:
        """Change a job; with ``owner`` only while that owner holds its lease; with
        ``expect`` only while the row still has those values (see ``as_seen``).

        False when no row matched: someone else moved the job first.
        """
        values: dict[str, Any] = {"updated_at": now_ms()}
        if state is not None:
            values["state"] = state
        if handle is not None:
            values["handle"] = json.dumps(handle)
        if config is not None:
            values["config"] = json.dumps(config)
        if release:
            values.update(lease_owner=None, lease_expires_at=None)
        cond = [j.jobs.c.run_id == run_id, *_still(expect or {})]
        if owner is not None:
            cond.append(j.jobs.c.lease_owner == owner)
        if only_state is not None:
            cond.append(j.jobs.c.state == only_state)
        with self.db.transaction() as conn:
            return bool(conn.execute(update(j.jobs).where(*cond).values(**values)).rowcount)

    def queued_with_run_status(self, status: str) -> list[tuple[str, str]]:
        """(workspace, run id) of queued jobs whose run is in ``status``."""
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                select(t.workspaces.c.name, j.jobs.c.run_id)
                .join(t.runs, t.runs.c.id == j.jobs.c.run_id)
                .join(t.workspaces, t.workspaces.c.id == j.jobs.c.workspace_id)
                .where(j.jobs.c.state == JobState.QUEUED.value, t.runs.c.status == status)
            ).all()
        return [(r[0], r[1]) for r in rows]

    def queued_by_target(self, kind: str) -> list[tuple[str, str, int]]:
        """(workspace, target, number of jobs waiting) for targets of ``kind``."""
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                select(t.workspaces.c.name, j.jobs.c.target, func.count())
                .join(t.runs, t.runs.c.id == j.jobs.c.run_id)
                .join(t.workspaces, t.workspaces.c.id == j.jobs.c.workspace_id)
                .where(
                    j.jobs.c.state == JobState.QUEUED.value,
                    j.jobs.c.kind == kind,
                    t.runs.c.status == "Queued",
                )
                .group_by(t.workspaces.c.name, j.jobs.c.target)
            ).all()
        return [(r[0], r[1], int(r[2])) for r in rows]

    def unlease(self, run_id: str, owner: str, attempts: int) -> bool:
        """Give back a job just leased, as if it never was: it waits for what it asks."""
        cond = [
            j.jobs.c.run_id == run_id,
            j.jobs.c.lease_owner == owner,
            j.jobs.c.state == JobState.ACTIVE.value,
            j.jobs.c.attempts == attempts,
            j.jobs.c.handle.is_(None),
        ]
        with self.db.transaction() as conn:
            return bool(
                conn.execute(
                    update(j.jobs)
                    .where(*cond)
                    .values(
                        state=JobState.QUEUED.value,
                        lease_owner=None,
                        lease_expires_at=None,
                        attempts=attempts - 1,
                        node=None,
                        updated_at=now_ms(),
                    )
                ).rowcount
            )

    def requeue(self, run_id: str, owner: str, expect: Mapping[str, Any] | None = None) -> bool:
        """Put a job back in the queue (a retry), keeping its attempt count.

        With ``expect``, only while the row is still as the caller saw it.
        """
        cond = [j.jobs.c.run_id == run_id, j.jobs.c.lease_owner == owner, *_still(expect or {})]
        with self.db.transaction() as conn:
            return bool(
                conn.execute(
                    update(j.jobs)
                    .where(*cond)
                    .values(
                        state=JobState.QUEUED.value,
                        lease_owner=None,
                        lease_expires_at=None,
                        handle=None,
                        node=None,
                        updated_at=now_ms(),
                    )
                ).rowcount
            )

    def _jobs(
        self, conn: Connection, cond: Sequence[Any], limit: int | None = None
    ) -> list[JobInfo]:
        q = (
            select(j.jobs, t.workspaces.c.name.label("workspace_name"))
            .join(t.workspaces, t.workspaces.c.id == j.jobs.c.workspace_id)
            .where(*cond)
            .order_by(j.jobs.c.priority.desc(), j.jobs.c.id)
        )
        if limit is not None:
            q = q.limit(limit)
        return [_job(r) for r in conn.execute(q).all()]

    # ---------------------------------------------------------------- logs
    def append_logs(self, run_id: str, chunks: Sequence[tuple[str, str, int]]) -> None:
        """Store ``(stream, text, at)`` chunks in order."""
        if not chunks:
            return
        with self.db.transaction() as conn:
            conn.execute(
                insert(j.job_logs),
                [{"run_id": run_id, "stream": s, "text": x, "at": at} for s, x, at in chunks],
            )

    def read_logs(self, run_id: str, after: int = 0, limit: int = MAX_LOG_PAGE) -> LogPage:
        tbl = j.job_logs
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                select(tbl)
                .where(tbl.c.run_id == run_id, tbl.c.id > after)
                .order_by(tbl.c.id)
                .limit(min(max(limit, 1), MAX_LOG_PAGE))
            ).all()
        chunks = [LogChunk(seq=r.id, at=r.at, stream=r.stream, text=r.text) for r in rows]
        return LogPage(chunks=chunks, next_seq=chunks[-1].seq if chunks else after)

    def delete_logs(self, run_ids: Sequence[str]) -> None:
        with self.db.transaction() as conn:
            conn.execute(delete(j.job_logs).where(j.job_logs.c.run_id.in_(list(run_ids))))

    # ----------------------------------------------------------- pool nodes
    def add_node(
        self, workspace: str, target: str, node_id: str, max_nodes: int, pid: int | None = None
    ) -> bool:
        """Register a starting node unless the pool already has ``max_nodes`` live ones."""
        tbl = j.pool_nodes
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            # Taking the target row's lock serialises concurrent scale-ups on PostgreSQL.
            conn.execute(
                update(j.compute_targets)
                .where(
                    j.compute_targets.c.workspace_id == ws_id, j.compute_targets.c.name == target
                )
                .values(created_at=j.compute_targets.c.created_at)
            )
            live = conn.execute(
                select(func.count()).where(
                    tbl.c.workspace_id == ws_id, tbl.c.target == target, tbl.c.state != "stopped"
                )
            ).scalar()
            if live is not None and live >= max_nodes:
                return False
            now = now_ms()
            conn.execute(
                insert(tbl).values(
                    id=node_id,
                    workspace_id=ws_id,
                    target=target,
                    state="starting",
                    pid=pid,
                    started_at=now,
                    heartbeat_at=now,
                )
            )
            return True

    def update_node(
        self,
        node_id: str,
        *,
        state: str | None = None,
        pid: int | None = None,
        run_id: str | None = None,
        clear_run: bool = False,
        host: str | None = None,
    ) -> bool:
        now = now_ms()
        values: dict[str, Any] = {"heartbeat_at": now}
        if state is not None:
            values["state"] = state
            if state == "stopped":
                values["stopped_at"] = now
        if pid is not None:
            values["pid"] = pid
        if host is not None:
            values["host"] = host
        if run_id is not None or clear_run:
            values["run_id"] = run_id
        with self.db.transaction() as conn:
            return bool(
                conn.execute(
                    update(j.pool_nodes)
                    .where(j.pool_nodes.c.id == node_id, j.pool_nodes.c.state != "stopped")
                    .values(**values)
                ).rowcount
            )

    def list_nodes(
        self, workspace: str | None = None, target: str | None = None, live_only: bool = True
    ) -> list[PoolNode]:
        tbl = j.pool_nodes
        cond: list[Any] = []
        with self.db.transaction(write=False) as conn:
            if workspace is not None:
                cond.append(tbl.c.workspace_id == self._workspace_id(conn, workspace))
            if target is not None:
                cond.append(tbl.c.target == target)
            if live_only:
                cond.append(tbl.c.state != "stopped")
            rows = conn.execute(select(tbl).where(and_(*cond)).order_by(tbl.c.started_at)).all()
        return [
            PoolNode(
                id=r.id,
                target=r.target,
                state=r.state,
                pid=r.pid,
                started_at=r.started_at,
                heartbeat_at=r.heartbeat_at,
                run_id=r.run_id,
                stopped_at=r.stopped_at,
                host=r.host,
            )
            for r in rows
        ]

    def node_workspace(self, node_id: str) -> str | None:
        with self.db.transaction(write=False) as conn:
            return conn.execute(
                select(t.workspaces.c.name)
                .join(j.pool_nodes, j.pool_nodes.c.workspace_id == t.workspaces.c.id)
                .where(j.pool_nodes.c.id == node_id)
            ).scalar()


# ------------------------------------------------------------ compare-and-set
SEEN_FIELDS = ("state", "lease_owner", "attempts", "handle")


def as_seen(job: JobInfo, **changes: Any) -> dict[str, Any]:
    """What a change made on the strength of ``job`` expects the row to still hold.

    ``changes`` replaces fields the caller knows moved since (a handle it recorded).
    """
    seen = {name: getattr(job, name) for name in SEEN_FIELDS}
    seen.update(changes)
    return seen


def _still(expect: Mapping[str, Any]) -> list[Any]:
    """Conditions true while the row has these values (None matches SQL NULL)."""
    cond = []
    for name, value in expect.items():
        column = j.jobs.c[name]
        if name == "handle" and value is not None:
            value = json.dumps(value)  # stored as written, so equal text is equal handle
        cond.append(column.is_(None) if value is None else column == value)
    return cond


# ------------------------------------------------------------------ rows
def _target(workspace: str, row: Row[Any]) -> ComputeTargetInfo:
    return ComputeTargetInfo(
        workspace=workspace,
        name=row.name,
        kind=row.kind,
        config=json.loads(row.config),
        created_at=row.created_at,
    )


def _environment(workspace: str, row: Row[Any]) -> EnvironmentInfo:
    return EnvironmentInfo(
        workspace=workspace,
        name=row.name,
        version=row.version,
        spec=json.loads(row.spec),
        build_hash=row.build_hash,
        created_at=row.created_at,
        build_status=row.build_status,
        build_log=row.build_log,
    )


def _snapshot(workspace: str, row: Row[Any], with_files: bool) -> SnapshotInfo:
    return SnapshotInfo(
        workspace=workspace,
        hash=row.hash,
        size=row.size,
        file_count=row.file_count,
        created_at=row.created_at,
        files=json.loads(row.files) if with_files else [],
    )


def _job(row: Row[Any]) -> JobInfo:
    return JobInfo(
        run_id=row.run_id,
        workspace=row.workspace_name,
        target=row.target,
        kind=row.kind,
        config=json.loads(row.config),
        state=row.state,
        priority=row.priority,
        attempts=row.attempts,
        max_retries=row.max_retries,
        submitted_at=row.submitted_at,
        seq=row.id,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        handle=json.loads(row.handle) if row.handle else None,
        node=row.node,
        submitter_role=row.submitter_role,
    )
