"""Workspaces and experiments in the metadata store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from cumulo.core import validation
from cumulo.core.entities import ExperimentInfo, WorkspaceInfo, now_ms
from cumulo.core.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from cumulo.store import schema as t
from cumulo.store.scoped import ScopedStore

DEFAULT_EXPERIMENT = "Default"


class ExperimentStore(ScopedStore):
    # ------------------------------------------------------------- workspaces
    def create_workspace(
        self, name: str, description: str = "", exist_ok: bool = False
    ) -> WorkspaceInfo:
        validation.workspace_name(name)
        with self.db.transaction() as conn:
            row = conn.execute(select(t.workspaces).where(t.workspaces.c.name == name)).first()
            if row is not None:
                if not exist_ok:
                    raise AlreadyExists(
                        f"Workspace {name!r} already exists; use Workspace.get({name!r}) "
                        "or pass exist_ok=True."
                    )
                return _workspace(row)
            now = now_ms()
            ws_id = conn.execute(
                insert(t.workspaces).values(name=name, description=description, created_at=now)
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                insert(t.experiments).values(
                    workspace_id=ws_id,
                    name=DEFAULT_EXPERIMENT,
                    created_at=now,
                    last_activity=now,
                    is_default=True,
                )
            )
            return WorkspaceInfo(name=name, created_at=now, description=description)

    def get_workspace(self, name: str) -> WorkspaceInfo:
        with self.db.transaction(write=False) as conn:
            row = conn.execute(select(t.workspaces).where(t.workspaces.c.name == name)).first()
        if row is None:
            raise NotFound(
                f"Workspace {name!r} does not exist; create it with "
                f"`cumulo workspace create {name}` or Workspace.create({name!r})."
            )
        return _workspace(row)

    def list_workspaces(self) -> list[WorkspaceInfo]:
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(select(t.workspaces).order_by(t.workspaces.c.name)).all()
        return [_workspace(r) for r in rows]

    # ------------------------------------------------------------ experiments
    def create_experiment(
        self, workspace: str, name: str, tags: dict[str, str] | None = None
    ) -> ExperimentInfo:
        validation.experiment_name(name)
        for k, v in (tags or {}).items():
            validation.key(k, "tag")
            validation.tag_value(v)
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            taken = conn.execute(
                select(t.experiments.c.id).where(
                    t.experiments.c.workspace_id == ws_id, t.experiments.c.name == name
                )
            ).scalar()
            if taken is not None:
                raise AlreadyExists(f"Experiment {name!r} already exists (id {taken}).")
            now = now_ms()
            exp_id = conn.execute(
                insert(t.experiments).values(
                    workspace_id=ws_id, name=name, created_at=now, last_activity=now
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            if tags:
                conn.execute(
                    insert(t.experiment_tags),
                    [{"experiment_id": exp_id, "key": k, "value": v} for k, v in tags.items()],
                )
            return self._experiment(conn, ws_id, self._experiment_row(conn, ws_id, exp_id))

    def get_or_create_experiment(self, workspace: str, name: str) -> ExperimentInfo:
        try:
            return self.get_experiment(workspace, name=name)
        except NotFound:
            pass
        try:
            return self.create_experiment(workspace, name)
        except (AlreadyExists, Conflict):  # another process created it first
            return self.get_experiment(workspace, name=name)

    def get_experiment(
        self, workspace: str, experiment_id: int | None = None, name: str | None = None
    ) -> ExperimentInfo:
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            if experiment_id is not None:
                row = self._experiment_row(conn, ws_id, experiment_id)
            else:
                found = conn.execute(
                    select(t.experiments).where(
                        t.experiments.c.workspace_id == ws_id, t.experiments.c.name == name
                    )
                ).first()
                if found is None:
                    raise NotFound(f"Experiment {name!r} does not exist in {workspace!r}.")
                row = found
            return self._experiment(conn, ws_id, row)

    def default_experiment(self, workspace: str) -> ExperimentInfo:
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            row = conn.execute(
                select(t.experiments).where(
                    t.experiments.c.workspace_id == ws_id, t.experiments.c.is_default
                )
            ).first()
            if row is None:
                raise NotFound(f"Workspace {workspace!r} has no default experiment.")
            return self._experiment(conn, ws_id, row)

    def list_experiments(
        self, workspace: str, include_archived: bool = False, view: str = "active"
    ) -> list[ExperimentInfo]:
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            q = select(t.experiments).where(t.experiments.c.workspace_id == ws_id)
            if view == "active":
                q = q.where(~t.experiments.c.deleted)
            elif view == "deleted":
                q = q.where(t.experiments.c.deleted)
            if not include_archived:
                q = q.where(~t.experiments.c.archived)
            rows = conn.execute(q.order_by(t.experiments.c.id)).all()
            return self._experiments(conn, ws_id, rows)

    def update_experiment(
        self,
        workspace: str,
        experiment_id: int,
        *,
        name: str | None = None,
        archived: bool | None = None,
        deleted: bool | None = None,
    ) -> ExperimentInfo:
        values: dict[str, Any] = {"last_activity": now_ms()}
        if name is not None:
            values["name"] = validation.experiment_name(name)
        if archived is not None:
            values["archived"] = archived
        if deleted is not None:
            values["deleted"] = deleted
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            row = self._experiment_row(conn, ws_id, experiment_id)
            if row.is_default and (deleted or archived):
                raise InvalidInput("The Default experiment cannot be deleted or archived.")
            if name is not None and name != row.name:
                clash = conn.execute(
                    select(t.experiments.c.id).where(
                        t.experiments.c.workspace_id == ws_id, t.experiments.c.name == name
                    )
                ).scalar()
                if clash is not None:
                    raise AlreadyExists(f"Experiment {name!r} already exists (id {clash}).")
            conn.execute(
                update(t.experiments).where(t.experiments.c.id == experiment_id).values(**values)
            )
            if deleted is not None:
                conn.execute(
                    update(t.runs)
                    .where(t.runs.c.experiment_id == experiment_id)
                    .values(deleted=deleted)
                )
            return self._experiment(conn, ws_id, self._experiment_row(conn, ws_id, experiment_id))

    def set_experiment_tag(
        self, workspace: str, experiment_id: int, key: str, value: str | None
    ) -> None:
        validation.key(key, "tag")
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            self._experiment_row(conn, ws_id, experiment_id)
            tbl = t.experiment_tags
            conn.execute(delete(tbl).where(tbl.c.experiment_id == experiment_id, tbl.c.key == key))
            if value is not None:
                conn.execute(
                    insert(tbl).values(
                        experiment_id=experiment_id, key=key, value=validation.tag_value(value)
                    )
                )

    def delete_experiment(self, workspace: str, experiment_id: int) -> list[str]:
        """Remove an experiment and all its runs for good; returns the removed run ids."""
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            row = self._experiment_row(conn, ws_id, experiment_id)
            if row.is_default:
                raise InvalidInput("The Default experiment cannot be deleted.")
            run_ids = list(
                conn.execute(
                    select(t.runs.c.id).where(t.runs.c.experiment_id == experiment_id)
                ).scalars()
            )
            self._purge_runs(conn, run_ids)
            conn.execute(
                delete(t.experiment_tags).where(t.experiment_tags.c.experiment_id == experiment_id)
            )
            conn.execute(delete(t.experiments).where(t.experiments.c.id == experiment_id))
            return run_ids

    def _experiment(self, conn: Connection, ws_id: int, row: Row[Any]) -> ExperimentInfo:
        return self._experiments(conn, ws_id, [row])[0]

    def _experiments(
        self, conn: Connection, ws_id: int, rows: Sequence[Row[Any]]
    ) -> list[ExperimentInfo]:
        if not rows:
            return []
        ids = [r.id for r in rows]
        counts: dict[int, int] = dict(
            conn.execute(
                select(t.runs.c.experiment_id, func.count())
                .where(t.runs.c.experiment_id.in_(ids), ~t.runs.c.deleted)
                .group_by(t.runs.c.experiment_id)
            ).all()
        )
        tags: dict[int, dict[str, str]] = {}
        for exp_id, k, v in conn.execute(
            select(t.experiment_tags).where(t.experiment_tags.c.experiment_id.in_(ids))
        ):
            tags.setdefault(exp_id, {})[k] = v
        workspace = conn.execute(
            select(t.workspaces.c.name).where(t.workspaces.c.id == ws_id)
        ).scalar_one()
        return [
            ExperimentInfo(
                id=r.id,
                workspace=workspace,
                name=r.name,
                created_at=r.created_at,
                last_activity=r.last_activity,
                archived=r.archived,
                deleted=r.deleted,
                is_default=r.is_default,
                run_count=counts.get(r.id, 0),
                tags=tags.get(r.id, {}),
            )
            for r in rows
        ]


def _workspace(row: Row[Any]) -> WorkspaceInfo:
    return WorkspaceInfo(name=row.name, created_at=row.created_at, description=row.description)
