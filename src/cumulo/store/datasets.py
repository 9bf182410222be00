"""Datastores and dataset versions in the metadata store, scoped by workspace.

A version's number is the next one of its dataset, taken in the transaction
that inserts it; the unique keys (name + version, name + digest) let one of
two writers of the same content win, and the other finds the winner's row.
The runs that read a version are the run's dataset inputs recorded with
``SOURCE_TYPE``, so MLflow clients see them too.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Row, delete, func, insert, select, update

from cumulo.core.datasets import SOURCE_TYPE, DatasetVersionInfo, DatastoreInfo
from cumulo.core.entities import now_ms
from cumulo.core.errors import AlreadyExists, Conflict, NotFound
from cumulo.store import schema as t
from cumulo.store import schema_datasets as d
from cumulo.store import schema_registry as r
from cumulo.store.db import Database
from cumulo.store.scoped import WorkspaceIds


def _dump(value: Any) -> str:
    return orjson.dumps(value).decode()


class DatasetStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._workspace_id = WorkspaceIds()

    # ------------------------------------------------------------- datastores
    def create_datastore(
        self,
        workspace: str,
        name: str,
        kind: str,
        config: dict[str, Any],
        secret: str | None,
    ) -> DatastoreInfo:
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    insert(d.datastores).values(
                        workspace_id=self._workspace_id(conn, workspace),
                        name=name,
                        kind=kind,
                        config=_dump(config),
                        secret=secret,
                        is_default=False,
                        created_at=now_ms(),
                    )
                )
        except Conflict:
            raise AlreadyExists(
                f"Datastore {name!r} already exists in workspace {workspace!r}."
            ) from None
        return self.get_datastore(workspace, name)

    def _datastore_row(self, conn: Any, workspace: str, name: str) -> Row[Any]:
        row = conn.execute(
            select(d.datastores).where(
                d.datastores.c.workspace_id == self._workspace_id(conn, workspace),
                d.datastores.c.name == name,
            )
        ).first()
        if row is None:
            raise NotFound(f"Datastore {name!r} does not exist in workspace {workspace!r}.")
        found: Row[Any] = row
        return found

    def get_datastore(self, workspace: str, name: str) -> DatastoreInfo:
        with self.db.transaction(write=False) as conn:
            return _datastore(self._datastore_row(conn, workspace, name), workspace)

    def datastore_secret(self, workspace: str, name: str) -> str | None:
        """The sealed credentials of a datastore (for the service to unseal, never to show)."""
        with self.db.transaction(write=False) as conn:
            secret = self._datastore_row(conn, workspace, name).secret
        return str(secret) if secret else None

    def list_datastores(self, workspace: str) -> list[DatastoreInfo]:
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                select(d.datastores)
                .where(d.datastores.c.workspace_id == self._workspace_id(conn, workspace))
                .order_by(d.datastores.c.name)
            ).all()
        return [_datastore(row, workspace) for row in rows]

    def set_default_datastore(self, workspace: str, name: str | None) -> None:
        """Make ``name`` the default (None: the workspace's own store again)."""
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            if name is not None:
                self._datastore_row(conn, workspace, name)
            conn.execute(
                update(d.datastores)
                .where(d.datastores.c.workspace_id == ws_id)
                .values(is_default=d.datastores.c.name == name if name else False)
            )

    def delete_datastore(self, workspace: str, name: str) -> None:
        with self.db.transaction() as conn:
            row = self._datastore_row(conn, workspace, name)
            conn.execute(delete(d.datastores).where(d.datastores.c.id == row.id))

    # --------------------------------------------------------------- datasets
    def add_version(
        self, workspace: str, values: dict[str, Any], create_new_version: bool
    ) -> tuple[DatasetVersionInfo, bool]:
        """Insert the next version of a dataset, or find the one with the same digest.

        Returns the version and whether it was created now. Without
        ``create_new_version`` a dataset that has other content already is refused.
        """
        tbl = d.dataset_versions
        name, digest = values["name"], values["digest"]
        for _ in range(5):  # another writer may take the number we read: read it again
            found = self.find_digest(workspace, name, digest)
            if found is not None:
                return found, False
            try:
                with self.db.transaction() as conn:
                    ws_id = self._workspace_id(conn, workspace)
                    latest = conn.execute(
                        select(func.max(tbl.c.version)).where(
                            tbl.c.workspace_id == ws_id, tbl.c.name == name
                        )
                    ).scalar()
                    if latest is not None and not create_new_version:
                        raise Conflict(
                            f"Dataset {name!r} exists with other content (version {latest}); "
                            "register with create_new_version=True to add a version."
                        )
                    conn.execute(
                        insert(tbl).values(
                            workspace_id=ws_id,
                            version=(latest or 0) + 1,
                            files=_dump(values["files"]),
                            format=_dump(values["format"]),
                            schema=_dump(values["schema"]),
                            profile=_dump(values["profile"]),
                            tags=_dump(values["tags"]),
                            **{
                                k: values[k]
                                for k in (
                                    "name",
                                    "kind",
                                    "digest",
                                    "description",
                                    "source",
                                    "size",
                                    "created_by",
                                )
                            },
                            created_at=now_ms(),
                        )
                    )
            except Conflict as exc:
                if "create_new_version" in str(exc):
                    raise
                continue
            found = self.find_digest(workspace, name, digest)
            assert found is not None
            return found, True
        raise Conflict(f"Dataset {name!r} is being registered by several writers; try again.")

    def find_digest(self, workspace: str, name: str, digest: str) -> DatasetVersionInfo | None:
        tbl = d.dataset_versions
        with self.db.transaction(write=False) as conn:
            row = conn.execute(
                select(tbl).where(
                    tbl.c.workspace_id == self._workspace_id(conn, workspace),
                    tbl.c.name == name,
                    tbl.c.digest == digest,
                )
            ).first()
        return None if row is None else _version(row, workspace)

    def get_version(self, workspace: str, name: str, version: int | None) -> DatasetVersionInfo:
        """A version by number, or the latest (``None``)."""
        tbl = d.dataset_versions
        with self.db.transaction(write=False) as conn:
            query = select(tbl).where(
                tbl.c.workspace_id == self._workspace_id(conn, workspace), tbl.c.name == name
            )
            if version is None:
                query = query.order_by(tbl.c.version.desc()).limit(1)
            else:
                query = query.where(tbl.c.version == version)
            row = conn.execute(query).first()
        if row is None:
            which = "any version" if version is None else f"version {version}"
            raise NotFound(f"Dataset {name!r} has no {which} in workspace {workspace!r}.")
        return _version(row, workspace)

    def list_versions(
        self, workspace: str, name: str | None = None, latest: bool = False
    ) -> list[DatasetVersionInfo]:
        """Versions of one dataset (newest first), or the latest version of each."""
        tbl = d.dataset_versions
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            query = select(tbl).where(tbl.c.workspace_id == ws_id)
            if name is not None:
                query = query.where(tbl.c.name == name)
            if latest:
                newest = (
                    select(tbl.c.name, func.max(tbl.c.version).label("v"))
                    .where(tbl.c.workspace_id == ws_id)
                    .group_by(tbl.c.name)
                    .subquery()
                )
                query = query.join(
                    newest, (newest.c.name == tbl.c.name) & (newest.c.v == tbl.c.version)
                )
            rows = conn.execute(query.order_by(tbl.c.name, tbl.c.version.desc())).all()
        return [_version(row, workspace) for row in rows]

    def delete_version(self, workspace: str, name: str, version: int) -> DatasetVersionInfo:
        info = self.get_version(workspace, name, version)
        tbl = d.dataset_versions
        with self.db.transaction() as conn:
            conn.execute(
                delete(tbl).where(
                    tbl.c.workspace_id == self._workspace_id(conn, workspace),
                    tbl.c.name == name,
                    tbl.c.version == version,
                )
            )
        return info

    def files_in_use(self, workspace: str) -> set[str]:
        """The SHA-256 of every file some version of the workspace holds."""
        tbl = d.dataset_versions
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                select(tbl.c.files).where(tbl.c.workspace_id == self._workspace_id(conn, workspace))
            ).all()
        return {f["sha256"] for row in rows for f in orjson.loads(row.files)}

    # ---------------------------------------------------------------- lineage
    def consumers(self, workspace: str, name: str, digest: str) -> list[tuple[str, dict[str, Any]]]:
        """``(run id, how it read it)`` of the runs of the workspace that read a version."""
        ds = r.run_dataset_inputs
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            rows = conn.execute(
                select(ds.c.run_id, ds.c.source)
                .join(t.runs, t.runs.c.id == ds.c.run_id)
                .where(
                    t.runs.c.workspace_id == ws_id,
                    ds.c.name == name,
                    ds.c.digest == digest,
                    ds.c.source_type == SOURCE_TYPE,
                )
                .order_by(ds.c.id)
            ).all()
        out = []
        for row in rows:
            try:
                how = orjson.loads(row.source)
            except orjson.JSONDecodeError:
                how = {}
            out.append((row.run_id, how if isinstance(how, dict) else {}))
        return out


def _datastore(row: Row[Any], workspace: str) -> DatastoreInfo:
    return DatastoreInfo(
        name=row.name,
        workspace=workspace,
        kind=row.kind,
        config=orjson.loads(row.config),
        has_credentials=bool(row.secret),
        is_default=bool(row.is_default),
        created_at=row.created_at,
    )


def _version(row: Row[Any], workspace: str) -> DatasetVersionInfo:
    return DatasetVersionInfo(
        name=row.name,
        workspace=workspace,
        version=row.version,
        kind=row.kind,
        digest=row.digest,
        files=orjson.loads(row.files),
        format=orjson.loads(row.format),
        schema=orjson.loads(row.schema),
        profile=orjson.loads(row.profile),
        description=row.description,
        tags=orjson.loads(row.tags),
        source=row.source,
        size=row.size,
        created_at=row.created_at,
        created_by=row.created_by,
    )
