"""The registry store: registered models, their versions, aliases and tags.

Like the metadata store, every public method opens one transaction, resolves the
workspace first and reaches models only through workspace-scoped helpers
(``_model_row``, ``_version_row``, ``_logged_row``), so no call can cross
workspaces. Files are not handled here: the registry service copies them and
keeps each version's ``storage_prefix``. Logged models and run lineage live in
``store/logged_models.py`` on the same scoping base (``RegistryScope``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, Select, delete, exists, func, insert, select, update

from cumulo.core.entities import (
    ModelVersionInfo,
    RegisteredModelInfo,
    now_ms,
)
from cumulo.core.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from cumulo.core.pages import decode_token, encode_token
from cumulo.core.search import Clause, OrderBy
from cumulo.store import schema as t
from cumulo.store import schema_registry as r
from cumulo.store.db import Database
from cumulo.store.run_query import compare
from cumulo.store.scoped import WorkspaceIds

_CHUNK = 500

rm, mv, lm = r.registered_models, r.model_versions, r.logged_models

# Attribute names (as the registry's callers spell them) -> columns, per entity.
MODEL_COLUMNS = {"name": rm.c.name, "created_at": rm.c.created_at, "updated_at": rm.c.updated_at}
VERSION_COLUMNS = {
    "name": rm.c.name,
    "version": mv.c.version,
    "run_id": mv.c.run_id,
    "source": mv.c.source,
    "stage": mv.c.stage,
    "status": mv.c.status,
    "logged_model_id": mv.c.logged_model_id,
    "created_at": mv.c.created_at,
    "updated_at": mv.c.updated_at,
}


class RegistryScope:
    """Workspace scoping shared by the registry and logged-model stores."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._workspace_id = WorkspaceIds()
        self._insert = db.upsert_insert()

    def _logged_row(
        self, conn: Connection, ws_id: int, model_id: str, allow_deleted: bool = False
    ) -> Row[Any]:
        row = conn.execute(
            select(lm).where(lm.c.id == model_id, lm.c.workspace_id == ws_id)
        ).first()
        if row is None or (row.deleted and not allow_deleted):
            raise NotFound(f"Logged model {model_id!r} does not exist in this workspace.")
        return row

    def _check_run(self, conn: Connection, ws_id: int, run_id: str) -> None:
        found = conn.execute(
            select(t.runs.c.id).where(t.runs.c.id == run_id, t.runs.c.workspace_id == ws_id)
        ).scalar()
        if found is None:
            raise NotFound(f"Run {run_id!r} does not exist in this workspace.")


class RegistryStore(RegistryScope):
    def _model_row(self, conn: Connection, ws_id: int, name: str) -> Row[Any]:
        row = conn.execute(select(rm).where(rm.c.workspace_id == ws_id, rm.c.name == name)).first()
        if row is None:
            raise NotFound(f"Registered model {name!r} does not exist in this workspace.")
        return row

    def _version_row(self, conn: Connection, model: Row[Any], version: int) -> Row[Any]:
        row = conn.execute(
            select(mv).where(mv.c.model_id == model.id, mv.c.version == version)
        ).first()
        if row is None:
            raise NotFound(f"Model {model.name!r} has no version {version}.")
        return row

    def _touch(self, conn: Connection, model_id: int, now: int) -> None:
        conn.execute(update(rm).where(rm.c.id == model_id).values(updated_at=now))

    # ------------------------------------------------------ registered models
    def create_model(
        self,
        workspace: str,
        name: str,
        *,
        description: str = "",
        tags: dict[str, str] | None = None,
        user: str = "",
    ) -> RegisteredModelInfo:
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            taken = conn.execute(
                select(rm.c.id).where(rm.c.workspace_id == ws_id, rm.c.name == name)
            ).scalar()
            if taken is not None:
                raise AlreadyExists(f"Registered model {name!r} already exists.")
            now = now_ms()
            model_id = conn.execute(
                insert(rm).values(
                    workspace_id=ws_id,
                    name=name,
                    description=description,
                    user=user,
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            if tags:
                conn.execute(
                    insert(r.registered_model_tags),
                    [{"model_id": model_id, "key": k, "value": v} for k, v in tags.items()],
                )
            return self._models(conn, workspace, [self._model_row(conn, ws_id, name)])[0]

    def get_model(self, workspace: str, name: str) -> RegisteredModelInfo:
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            return self._models(conn, workspace, [self._model_row(conn, ws_id, name)])[0]

    def update_model(
        self,
        workspace: str,
        name: str,
        *,
        new_name: str | None = None,
        description: str | None = None,
    ) -> RegisteredModelInfo:
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            row = self._model_row(conn, ws_id, name)
            values: dict[str, Any] = {"updated_at": now_ms()}
            if description is not None:
                values["description"] = description
            if new_name is not None and new_name != name:
                clash = conn.execute(
                    select(rm.c.id).where(rm.c.workspace_id == ws_id, rm.c.name == new_name)
                ).scalar()
                if clash is not None:
                    raise AlreadyExists(f"Registered model {new_name!r} already exists.")
                values["name"] = new_name
            conn.execute(update(rm).where(rm.c.id == row.id).values(**values))
            return self._models(conn, workspace, [self._model_row(conn, ws_id, new_name or name)])[
                0
            ]

    def delete_model(self, workspace: str, name: str) -> list[str]:
        """Remove a model with all its versions; returns their storage prefixes."""
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            row = self._model_row(conn, ws_id, name)
            versions = conn.execute(
                select(mv.c.id, mv.c.storage_prefix).where(mv.c.model_id == row.id)
            ).all()
            ids = [v.id for v in versions]
            for chunk in chunks(ids):
                conn.execute(
                    delete(r.model_version_tags).where(r.model_version_tags.c.version_id.in_(chunk))
                )
            conn.execute(delete(mv).where(mv.c.model_id == row.id))
            for tbl in (r.registered_model_tags, r.registered_model_aliases):
                conn.execute(delete(tbl).where(tbl.c.model_id == row.id))
            conn.execute(delete(rm).where(rm.c.id == row.id))
            return [v.storage_prefix for v in versions if v.storage_prefix]

    def search_models(
        self,
        workspace: str,
        clauses: Sequence[Clause] = (),
        order_by: Sequence[OrderBy] = (),
        max_results: int = 100,
        page_token: str | None = None,
    ) -> tuple[list[RegisteredModelInfo], str | None]:
        offset = decode_token(page_token)
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            q = select(rm).where(rm.c.workspace_id == ws_id)
            for c in clauses:
                q = q.where(condition(c, MODEL_COLUMNS, rm.c.id, r.registered_model_tags, "model"))
            q = ordered(q, order_by, MODEL_COLUMNS, [rm.c.name.asc()])
            rows = conn.execute(q.offset(offset).limit(max_results + 1)).all()
            models = self._models(conn, workspace, rows[:max_results])
        return models, encode_token(offset + max_results) if len(rows) > max_results else None

    def set_model_tag(self, workspace: str, name: str, key: str, value: str | None) -> None:
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            row = self._model_row(conn, ws_id, name)
            set_kv(conn, self._insert, r.registered_model_tags, "model_id", row.id, key, value)
            self._touch(conn, row.id, now_ms())

    def set_alias(self, workspace: str, name: str, alias: str, version: int) -> None:
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            row = self._model_row(conn, ws_id, name)
            self._version_row(conn, row, version)
            tbl = r.registered_model_aliases
            stmt = self._insert(tbl).values(model_id=row.id, alias=alias, version=version)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[tbl.c.model_id, tbl.c.alias], set_={"version": version}
                )
            )
            self._touch(conn, row.id, now_ms())

    def delete_alias(self, workspace: str, name: str, alias: str) -> None:
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            row = self._model_row(conn, ws_id, name)
            tbl = r.registered_model_aliases
            gone = conn.execute(
                delete(tbl).where(tbl.c.model_id == row.id, tbl.c.alias == alias)
            ).rowcount
            if not gone:
                raise NotFound(f"Model {name!r} has no alias {alias!r}.")

    def version_by_alias(self, workspace: str, name: str, alias: str) -> ModelVersionInfo:
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            row = self._model_row(conn, ws_id, name)
            tbl = r.registered_model_aliases
            version = conn.execute(
                select(tbl.c.version).where(tbl.c.model_id == row.id, tbl.c.alias == alias)
            ).scalar()
            if version is None:
                raise NotFound(f"Model {name!r} has no alias {alias!r}.")
            return self._versions(conn, workspace, [self._joined_version(conn, row, version)])[0]

    # --------------------------------------------------------------- versions
    def create_version(
        self,
        workspace: str,
        name: str,
        *,
        prefix_for: Callable[[int], str] | None,
        source: str = "",
        run_id: str | None = None,
        logged_model_id: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        user: str = "",
        run_link: str = "",
    ) -> ModelVersionInfo:
        """Add the next version in status PENDING; the service copies files, then finishes it.

        ``prefix_for(version)`` names where the version's files will live; a prefix
        still held by another version (after a rename) gets a unique suffix.
        """
        for _attempt in range(5):
            try:
                with self.db.transaction() as conn:
                    ws_id = self._workspace_id(conn, workspace)
                    model = self._model_row(conn, ws_id, name)
                    if logged_model_id is not None:  # lineage may name a deleted one
                        self._logged_row(conn, ws_id, logged_model_id, allow_deleted=True)
                    # A deleted version's number is not given again (as in MLflow): a
                    # reference to it must never name another model.
                    highest = conn.execute(
                        select(func.max(mv.c.version)).where(mv.c.model_id == model.id)
                    ).scalar()
                    version = max(highest or 0, model.last_version or 0) + 1
                    prefix = prefix_for(version) if prefix_for is not None else None
                    if prefix is not None:
                        held = conn.execute(
                            select(mv.c.id).where(mv.c.storage_prefix == prefix)
                        ).scalar()
                        if held is not None:
                            prefix = f"{prefix}-{uuid.uuid4().hex[:8]}"
                    now = now_ms()
                    version_id = conn.execute(
                        insert(mv).values(
                            model_id=model.id,
                            version=version,
                            source=source,
                            run_id=run_id,
                            logged_model_id=logged_model_id,
                            storage_prefix=prefix,
                            status="PENDING",
                            description=description,
                            user=user,
                            run_link=run_link,
                            created_at=now,
                            updated_at=now,
                        )
                    ).inserted_primary_key[0]  # type: ignore[index]
                    if tags:
                        conn.execute(
                            insert(r.model_version_tags),
                            [
                                {"version_id": version_id, "key": k, "value": v}
                                for k, v in tags.items()
                            ],
                        )
                    conn.execute(
                        update(rm)
                        .where(rm.c.id == model.id)
                        .values(updated_at=now, last_version=version)
                    )
                    return self._versions(
                        conn, workspace, [self._joined_version(conn, model, version)]
                    )[0]
            except Conflict:
                # Another writer took this version number at once (PostgreSQL): take the next.
                continue
        raise Conflict(f"Could not number a new version of {name!r}; too many at once. Retry.")

    def finish_version(
        self,
        workspace: str,
        name: str,
        version: int,
        *,
        status: str,
        status_message: str = "",
        framework: str | None = None,
        flavors: dict[str, Any] | None = None,
        signature: dict[str, Any] | None = None,
    ) -> ModelVersionInfo:
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            model = self._model_row(conn, ws_id, name)
            row = self._version_row(conn, model, version)
            conn.execute(
                update(mv)
                .where(mv.c.id == row.id)
                .values(
                    status=status,
                    status_message=status_message,
                    framework=framework,
                    flavors=json.dumps(flavors) if flavors else None,
                    signature=json.dumps(signature) if signature else None,
                    updated_at=now_ms(),
                )
            )
            return self._versions(conn, workspace, [self._joined_version(conn, model, version)])[0]

    def get_version(self, workspace: str, name: str, version: int) -> ModelVersionInfo:
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            model = self._model_row(conn, ws_id, name)
            return self._versions(conn, workspace, [self._joined_version(conn, model, version)])[0]

    def version_by_prefix(self, workspace: str, prefix: str) -> ModelVersionInfo:
        """The version whose files live under ``prefix`` (in this workspace)."""
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            row = conn.execute(
                select(mv, rm.c.name)
                .join(rm, rm.c.id == mv.c.model_id)
                .where(rm.c.workspace_id == ws_id, mv.c.storage_prefix == prefix)
            ).first()
            if row is None:
                raise NotFound(f"No model version keeps its files at {prefix!r}.")
            return self._versions(conn, workspace, [row])[0]

    def update_version(
        self,
        workspace: str,
        name: str,
        version: int,
        *,
        description: str | None = None,
        stage: str | None = None,
        archive_others: bool = False,
    ) -> ModelVersionInfo:
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            model = self._model_row(conn, ws_id, name)
            row = self._version_row(conn, model, version)
            now = now_ms()
            values: dict[str, Any] = {"updated_at": now}
            if description is not None:
                values["description"] = description
            if stage is not None:
                values["stage"] = stage
                if archive_others and stage in ("Staging", "Production"):
                    conn.execute(
                        update(mv)
                        .where(mv.c.model_id == model.id, mv.c.id != row.id, mv.c.stage == stage)
                        .values(stage="Archived", updated_at=now)
                    )
            conn.execute(update(mv).where(mv.c.id == row.id).values(**values))
            if stage is not None:  # a new description is the version's change only (MLflow)
                self._touch(conn, model.id, now)
            return self._versions(conn, workspace, [self._joined_version(conn, model, version)])[0]

    def delete_version(self, workspace: str, name: str, version: int) -> str | None:
        """Remove a version, its tags and the aliases pointing at it; returns its prefix."""
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            model = self._model_row(conn, ws_id, name)
            row = self._version_row(conn, model, version)
            conn.execute(
                delete(r.model_version_tags).where(r.model_version_tags.c.version_id == row.id)
            )
            aliases = r.registered_model_aliases
            conn.execute(
                delete(aliases).where(aliases.c.model_id == model.id, aliases.c.version == version)
            )
            conn.execute(delete(mv).where(mv.c.id == row.id))
            self._touch(conn, model.id, now_ms())
            return str(row.storage_prefix) if row.storage_prefix else None

    def set_version_tag(
        self, workspace: str, name: str, version: int, key: str, value: str | None
    ) -> None:
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            model = self._model_row(conn, ws_id, name)
            row = self._version_row(conn, model, version)
            set_kv(conn, self._insert, r.model_version_tags, "version_id", row.id, key, value)
            conn.execute(update(mv).where(mv.c.id == row.id).values(updated_at=now_ms()))

    def latest_versions(
        self, workspace: str, name: str, stages: Sequence[str] | None = None
    ) -> list[ModelVersionInfo]:
        """The highest version in each stage (all stages when ``stages`` is empty)."""
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            model = self._model_row(conn, ws_id, name)
            latest = self._latest_by_stage(conn, [model.id])
            rows = [
                row
                for (_mid, stage), row in sorted(latest.items(), key=lambda kv: kv[1].version)
                if not stages or stage.lower() in {s.lower() for s in stages}
            ]
            return self._versions(conn, workspace, rows)

    def search_versions(
        self,
        workspace: str,
        clauses: Sequence[Clause] = (),
        order_by: Sequence[OrderBy] = (),
        max_results: int = 10_000,
        page_token: str | None = None,
    ) -> tuple[list[ModelVersionInfo], str | None]:
        offset = decode_token(page_token)
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            q = (
                select(mv, rm.c.name)
                .join(rm, rm.c.id == mv.c.model_id)
                .where(rm.c.workspace_id == ws_id)
            )
            for c in clauses:
                q = q.where(condition(c, VERSION_COLUMNS, mv.c.id, r.model_version_tags, "version"))
            q = ordered(q, order_by, VERSION_COLUMNS, [rm.c.name.asc(), mv.c.version.desc()])
            rows = conn.execute(q.offset(offset).limit(max_results + 1)).all()
            versions = self._versions(conn, workspace, rows[:max_results])
        return versions, encode_token(offset + max_results) if len(rows) > max_results else None

    def versions_of_logged_model(self, workspace: str, model_id: str) -> list[ModelVersionInfo]:
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            rows = conn.execute(
                select(mv, rm.c.name)
                .join(rm, rm.c.id == mv.c.model_id)
                .where(rm.c.workspace_id == ws_id, mv.c.logged_model_id == model_id)
                .order_by(rm.c.name, mv.c.version)
            ).all()
            return self._versions(conn, workspace, rows)

    def _joined_version(self, conn: Connection, model: Row[Any], version: int) -> Row[Any]:
        row = conn.execute(
            select(mv, rm.c.name)
            .join(rm, rm.c.id == mv.c.model_id)
            .where(mv.c.model_id == model.id, mv.c.version == version)
        ).first()
        if row is None:
            raise NotFound(f"Model {model.name!r} has no version {version}.")
        return row

    def _latest_by_stage(
        self, conn: Connection, model_ids: list[int]
    ) -> dict[tuple[int, str], Row[Any]]:
        latest: dict[tuple[int, str], Row[Any]] = {}
        for chunk in chunks(model_ids):
            top = (
                select(mv.c.model_id, mv.c.stage, func.max(mv.c.version).label("version"))
                .where(mv.c.model_id.in_(chunk))
                .group_by(mv.c.model_id, mv.c.stage)
                .subquery()
            )
            rows = conn.execute(
                select(mv, rm.c.name)
                .join(rm, rm.c.id == mv.c.model_id)
                .join(
                    top,
                    (top.c.model_id == mv.c.model_id)
                    & (top.c.stage == mv.c.stage)
                    & (top.c.version == mv.c.version),
                )
            ).all()
            for row in rows:
                latest[(row.model_id, row.stage)] = row
        return latest

    def _versions(
        self, conn: Connection, workspace: str, rows: Sequence[Row[Any]]
    ) -> list[ModelVersionInfo]:
        """Rows of ``select(mv, rm.c.name)`` as entities, with tags and aliases."""
        if not rows:
            return []
        tags: dict[int, dict[str, str]] = {}
        aliases: dict[tuple[int, int], list[str]] = {}
        vt, al = r.model_version_tags, r.registered_model_aliases
        for chunk in chunks([row.id for row in rows]):
            for vid, k, v in conn.execute(select(vt).where(vt.c.version_id.in_(chunk))):
                tags.setdefault(vid, {})[k] = v
        for chunk in chunks(list({row.model_id for row in rows})):
            for mid, alias, version in conn.execute(
                select(al.c.model_id, al.c.alias, al.c.version)
                .where(al.c.model_id.in_(chunk))
                .order_by(al.c.alias)
            ):
                aliases.setdefault((mid, version), []).append(alias)
        return [
            ModelVersionInfo(
                workspace=workspace,
                name=row.name,
                version=row.version,
                created_at=row.created_at,
                updated_at=row.updated_at,
                source=row.source,
                run_id=row.run_id,
                logged_model_id=row.logged_model_id,
                storage_prefix=row.storage_prefix,
                status=row.status,
                status_message=row.status_message,
                stage=row.stage,
                description=row.description,
                framework=row.framework,
                flavors=json.loads(row.flavors) if row.flavors else {},
                signature=json.loads(row.signature) if row.signature else None,
                user=row.user,
                run_link=row.run_link,
                tags=tags.get(row.id, {}),
                aliases=aliases.get((row.model_id, row.version), []),
            )
            for row in rows
        ]

    def _models(
        self, conn: Connection, workspace: str, rows: Sequence[Row[Any]]
    ) -> list[RegisteredModelInfo]:
        if not rows:
            return []
        ids = [row.id for row in rows]
        tags: dict[int, dict[str, str]] = {}
        aliases: dict[int, dict[str, int]] = {}
        mt, al = r.registered_model_tags, r.registered_model_aliases
        for chunk in chunks(ids):
            for mid, k, v in conn.execute(select(mt).where(mt.c.model_id.in_(chunk))):
                tags.setdefault(mid, {})[k] = v
            for mid, alias, version in conn.execute(
                select(al.c.model_id, al.c.alias, al.c.version)
                .where(al.c.model_id.in_(chunk))
                .order_by(al.c.alias)
            ):
                aliases.setdefault(mid, {})[alias] = version
        latest_rows = sorted(self._latest_by_stage(conn, ids).values(), key=lambda v: v.version)
        latest: dict[int, list[ModelVersionInfo]] = {}
        for row, info in zip(
            latest_rows, self._versions(conn, workspace, latest_rows), strict=True
        ):
            latest.setdefault(row.model_id, []).append(info)
        return [
            RegisteredModelInfo(
                workspace=workspace,
                name=row.name,
                created_at=row.created_at,
                updated_at=row.updated_at,
                description=row.description,
                user=row.user,
                tags=tags.get(row.id, {}),
                aliases=aliases.get(row.id, {}),
                latest_versions=latest.get(row.id, []),
            )
            for row in rows
        ]


# ------------------------------------------------------------------ helpers
def chunks(items: list[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def set_kv(
    conn: Connection, insert_: Any, tbl: Any, owner: str, owner_id: Any, key: str, value: str | None
) -> None:
    """Upsert a tag, or delete it when ``value`` is None (NotFound if it was not there)."""
    owner_col = tbl.c[owner]
    if value is None:
        gone = conn.execute(delete(tbl).where(owner_col == owner_id, tbl.c.key == key)).rowcount
        if not gone:
            raise NotFound(f"Tag {key!r} does not exist.")
        return
    stmt = insert_(tbl).values({owner: owner_id, "key": key, "value": value})
    conn.execute(
        stmt.on_conflict_do_update(index_elements=[owner_col, tbl.c.key], set_={"value": value})
    )


def kv_condition(c: Clause, owner_col: Any, tbl: Any, owner: str) -> Any:
    base = [tbl.c[owner] == owner_col, tbl.c.key == c.key]
    if c.op == "IS NULL":
        return ~exists().where(*base)
    if c.op == "IS NOT NULL":
        return exists().where(*base)
    # A model without the tag is "not equal" to any value: how MLflow's clients filter
    # prompts out (tags.`mlflow.prompt.is_prompt` != 'true').
    if c.op == "!=":
        return ~exists().where(*base, tbl.c.value == c.value)
    if c.op == "NOT IN":
        return ~exists().where(*base, tbl.c.value.in_(list(c.value)))
    return exists().where(*base, compare(tbl.c.value, c.op, c.value))


def condition(c: Clause, columns: dict[str, Any], owner_col: Any, tag_table: Any, what: str) -> Any:
    if c.entity == "tag":
        owner = "version_id" if what == "version" else "model_id"
        return kv_condition(c, owner_col, tag_table, owner)
    if c.entity != "attribute" or c.key not in columns:
        known = ", ".join(sorted(columns))
        raise InvalidInput(f"Cannot filter {what}s by {c.entity} {c.key!r}; known: {known}, tags.")
    return compare(columns[c.key], c.op, c.value)


def ordered(
    q: Select[Any], orders: Sequence[OrderBy], columns: dict[str, Any], default: list[Any]
) -> Select[Any]:
    terms: list[Any] = []
    for o in orders:
        if o.entity != "attribute" or o.key not in columns:
            known = ", ".join(sorted(columns))
            raise InvalidInput(f"Cannot order by {o.entity} {o.key!r}; known: {known}.")
        col = columns[o.key]
        terms.append(col.asc() if o.ascending else col.desc())
    return q.order_by(*terms, *default)
