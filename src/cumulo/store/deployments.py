"""The deployments store: endpoints, deployments, replicas, request metrics and logs in SQL.

Every public method is one transaction scoped by workspace (endpoints are
reached only through ``_endpoint_row``). The supervisor's methods work on
deployment ids it leased; the router reads ``routes`` for one endpoint.

Each deployment has a secret its replicas are opened with (see
``core.deployments.replica_secret``). It is kept in the spec column, so every
server sharing the store can reach the replicas, and is handed only to the
supervisor (``lease_deployments``) and the router (``routes``): the
``DeploymentInfo`` the API shows never holds it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, insert, or_, select, update

from cumulo.core.deployments import (
    DeploymentInfo,
    DeploymentState,
    EndpointInfo,
    ReplicaInfo,
    ReplicaState,
    replica_secret,
    scoring_path,
    swagger_path,
)
from cumulo.core.entities import now_ms
from cumulo.core.errors import AlreadyExists, Conflict, NotFound
from cumulo.store import schema as t
from cumulo.store import schema_deployments as d
from cumulo.store.db import Database
from cumulo.store.scoped import WorkspaceIds

_SECRET = "_replica_secret"  # the deployment's secret, inside its spec column


def new_key() -> str:
    return secrets.token_urlsafe(32)


def _spec_with_secret(spec: dict[str, Any], secret: str) -> str:
    return json.dumps({**spec, _SECRET: secret})


def _split_spec(text: str) -> tuple[dict[str, Any], str | None]:
    """(the spec as shown, the deployment's secret) of a stored spec."""
    spec = json.loads(text)
    secret = spec.pop(_SECRET, None)
    return spec, secret if isinstance(secret, str) and secret else None


class DeploymentStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._workspace_id = WorkspaceIds()

    # ---------------------------------------------------------------- scoping
    def _endpoint_row(self, conn: Connection, workspace: str, name: str) -> Row[Any]:
        ws_id = self._workspace_id(conn, workspace)
        row = conn.execute(
            select(d.endpoints).where(
                d.endpoints.c.workspace_id == ws_id, d.endpoints.c.name == name
            )
        ).first()
        if row is None:
            raise NotFound(
                f"Endpoint {name!r} does not exist in workspace {workspace!r}; list them with "
                "`cumulo endpoint list`."
            )
        return row

    def _deployment_row(self, conn: Connection, endpoint_id: int, name: str) -> Row[Any]:
        row = conn.execute(
            select(d.deployments).where(
                d.deployments.c.endpoint_id == endpoint_id, d.deployments.c.name == name
            )
        ).first()
        if row is None:
            raise NotFound(f"Deployment {name!r} does not exist on this endpoint.")
        return row

    # ---------------------------------------------------------------- endpoints
    def create_endpoint(
        self,
        workspace: str,
        name: str,
        auth_mode: str,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> EndpointInfo:
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            found = conn.execute(
                select(d.endpoints.c.id).where(
                    d.endpoints.c.workspace_id == ws_id, d.endpoints.c.name == name
                )
            ).scalar()
            if found is not None:
                raise AlreadyExists(
                    f"Endpoint {name!r} already exists; add a deployment to it or pick another "
                    "name."
                )
            now = now_ms()
            conn.execute(
                insert(d.endpoints).values(
                    workspace_id=ws_id,
                    name=name,
                    description=description,
                    auth_mode=auth_mode,
                    primary_key=new_key(),
                    secondary_key=new_key(),
                    traffic="{}",
                    mirror_traffic="{}",
                    tags=json.dumps(tags or {}),
                    created_at=now,
                    updated_at=now,
                )
            )
            return self._endpoint(conn, workspace, self._endpoint_row(conn, workspace, name))

    def get_endpoint(self, workspace: str, name: str) -> EndpointInfo:
        with self.db.transaction(write=False) as conn:
            return self._endpoint(conn, workspace, self._endpoint_row(conn, workspace, name))

    def list_endpoints(self, workspace: str) -> list[EndpointInfo]:
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            rows = conn.execute(
                select(d.endpoints)
                .where(d.endpoints.c.workspace_id == ws_id)
                .order_by(d.endpoints.c.name)
            ).all()
            return [self._endpoint(conn, workspace, r) for r in rows]

    def update_endpoint(
        self,
        workspace: str,
        name: str,
        *,
        traffic: dict[str, int] | None = None,
        mirror_traffic: dict[str, int] | None = None,
        auth_mode: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        regenerate: str | None = None,
    ) -> EndpointInfo:
        with self.db.transaction() as conn:
            row = self._endpoint_row(conn, workspace, name)
            values: dict[str, Any] = {"updated_at": now_ms()}
            if traffic is not None:
                values["traffic"] = json.dumps(traffic)
            if mirror_traffic is not None:
                values["mirror_traffic"] = json.dumps(mirror_traffic)
            if auth_mode is not None:
                values["auth_mode"] = auth_mode
            if description is not None:
                values["description"] = description
            if tags is not None:
                values["tags"] = json.dumps(tags)
            if regenerate is not None:
                values[f"{regenerate}_key"] = new_key()
            conn.execute(update(d.endpoints).where(d.endpoints.c.id == row.id).values(**values))
            return self._endpoint(conn, workspace, self._endpoint_row(conn, workspace, name))

    def get_keys(self, workspace: str, name: str) -> tuple[str, str]:
        with self.db.transaction(write=False) as conn:
            row = self._endpoint_row(conn, workspace, name)
            return row.primary_key, row.secondary_key

    def delete_endpoint(self, workspace: str, name: str) -> list[int]:
        """Delete the endpoint and everything under it; returns its deployment ids."""
        with self.db.transaction() as conn:
            row = self._endpoint_row(conn, workspace, name)
            ids = list(
                conn.execute(
                    select(d.deployments.c.id).where(d.deployments.c.endpoint_id == row.id)
                ).scalars()
            )
            self._purge_deployments(conn, ids)
            conn.execute(delete(d.endpoints).where(d.endpoints.c.id == row.id))
            return ids

    def _purge_deployments(self, conn: Connection, ids: list[int]) -> None:
        if not ids:
            return
        for tbl in (d.deployment_replicas, d.deployment_metrics, d.deployment_request_logs):
            conn.execute(delete(tbl).where(tbl.c.deployment_id.in_(ids)))
        conn.execute(delete(d.deployments).where(d.deployments.c.id.in_(ids)))

    # -------------------------------------------------------------- deployments
    def create_deployment(
        self,
        workspace: str,
        endpoint: str,
        name: str,
        kind: str,
        models: list[dict[str, Any]],
        spec: dict[str, Any],
    ) -> DeploymentInfo:
        with self.db.transaction() as conn:
            ep = self._endpoint_row(conn, workspace, endpoint)
            found = conn.execute(
                select(d.deployments.c.id).where(
                    d.deployments.c.endpoint_id == ep.id, d.deployments.c.name == name
                )
            ).scalar()
            if found is not None:
                raise AlreadyExists(
                    f"Endpoint {endpoint!r} already has a deployment {name!r}; update it or "
                    "pick another name."
                )
            now = now_ms()
            conn.execute(
                insert(d.deployments).values(
                    endpoint_id=ep.id,
                    name=name,
                    kind=kind,
                    models=json.dumps(models),
                    spec=_spec_with_secret(spec, new_key()),
                    generation=1,
                    state=DeploymentState.CREATING.value,
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                update(d.endpoints).where(d.endpoints.c.id == ep.id).values(updated_at=now)
            )
            return self._deployment(conn, endpoint, self._deployment_row(conn, ep.id, name))

    def update_deployment(
        self,
        workspace: str,
        endpoint: str,
        name: str,
        kind: str,
        models: list[dict[str, Any]],
        spec: dict[str, Any],
    ) -> DeploymentInfo:
        """A new generation: the supervisor replaces the replicas one at a time."""
        with self.db.transaction() as conn:
            ep = self._endpoint_row(conn, workspace, endpoint)
            row = self._deployment_row(conn, ep.id, name)
            # Same secret: replicas of the old version keep taking requests until replaced.
            secret = _split_spec(row.spec)[1] or new_key()
            conn.execute(
                update(d.deployments)
                .where(d.deployments.c.id == row.id)
                .values(
                    kind=kind,
                    models=json.dumps(models),
                    spec=_spec_with_secret(spec, secret),
                    generation=row.generation + 1,
                    state=DeploymentState.UPDATING.value,
                    error=None,
                    updated_at=now_ms(),
                )
            )
            return self._deployment(conn, endpoint, self._deployment_row(conn, ep.id, name))

    def delete_deployment(self, workspace: str, endpoint: str, name: str) -> int:
        with self.db.transaction() as conn:
            ep = self._endpoint_row(conn, workspace, endpoint)
            row = self._deployment_row(conn, ep.id, name)
            traffic = json.loads(ep.traffic or "{}")
            if traffic.get(name):
                raise Conflict(
                    f"Deployment {name!r} takes {traffic[name]}% of the traffic; shift it to "
                    "other deployments (update_traffic) before deleting it."
                )
            mirror = json.loads(ep.mirror_traffic or "{}")
            if name in mirror:
                mirror.pop(name)
                conn.execute(
                    update(d.endpoints)
                    .where(d.endpoints.c.id == ep.id)
                    .values(mirror_traffic=json.dumps(mirror))
                )
            self._purge_deployments(conn, [row.id])
            return int(row.id)

    def get_deployment(self, workspace: str, endpoint: str, name: str) -> DeploymentInfo:
        with self.db.transaction(write=False) as conn:
            ep = self._endpoint_row(conn, workspace, endpoint)
            return self._deployment(conn, endpoint, self._deployment_row(conn, ep.id, name))

    def deployment_ids(self, workspace: str, endpoint: str) -> dict[str, int]:
        with self.db.transaction(write=False) as conn:
            ep = self._endpoint_row(conn, workspace, endpoint)
            rows = conn.execute(
                select(d.deployments.c.name, d.deployments.c.id).where(
                    d.deployments.c.endpoint_id == ep.id
                )
            ).all()
            return {r.name: int(r.id) for r in rows}

    # --------------------------------------------------------------- supervisor
    def lease_deployments(self, owner: str, ttl_ms: int) -> list[dict[str, Any]]:
        """Take (or renew) the lease of every deployment no other live supervisor holds."""
        now = now_ms()
        free = or_(
            d.deployments.c.lease_owner.is_(None),
            d.deployments.c.lease_owner == owner,
            d.deployments.c.lease_expires_at < now,
        )
        # Most ticks find nothing to take: read first (no write lock), write only if needed.
        with self.db.transaction(write=False) as conn:
            if conn.execute(select(d.deployments.c.id).where(free).limit(1)).first() is None:
                return []
        with self.db.transaction() as conn:
            conn.execute(
                update(d.deployments)
                .where(free)
                .values(lease_owner=owner, lease_expires_at=now + ttl_ms)
            )
            rows = conn.execute(
                select(
                    d.deployments,
                    d.endpoints.c.name.label("endpoint"),
                    t.workspaces.c.name.label("workspace"),
                )
                .join(d.endpoints, d.endpoints.c.id == d.deployments.c.endpoint_id)
                .join(t.workspaces, t.workspaces.c.id == d.endpoints.c.workspace_id)
                .where(d.deployments.c.lease_owner == owner)
            ).all()
            return [
                {
                    "id": int(r.id),
                    "workspace": r.workspace,
                    "endpoint": r.endpoint,
                    "name": r.name,
                    "kind": r.kind,
                    "models": json.loads(r.models),
                    "spec": _split_spec(r.spec)[0],
                    "secret": self._secret(conn, r),
                    "generation": int(r.generation),
                    "state": r.state,
                }
                for r in rows
            ]

    def has_local_deployments(self) -> bool:
        """Whether any deployment runs its replicas as local processes (not on Ray)."""
        with self.db.transaction(write=False) as conn:
            specs = conn.execute(select(d.deployments.c.spec)).scalars().all()
        return any(not _split_spec(spec)[0].get("compute_target") for spec in specs)

    @staticmethod
    def _secret(conn: Connection, row: Row[Any]) -> str:
        """The deployment's secret (one is made for a deployment stored without one)."""
        spec, secret = _split_spec(row.spec)
        if secret is None:
            secret = new_key()
            conn.execute(
                update(d.deployments)
                .where(d.deployments.c.id == row.id)
                .values(spec=_spec_with_secret(spec, secret))
            )
        return secret

    def release_leases(self, owner: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                update(d.deployments)
                .where(d.deployments.c.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
            )
            conn.execute(
                delete(d.deployment_replicas).where(d.deployment_replicas.c.owner == owner)
            )

    def set_deployment_state(
        self, deployment_id: int, state: str, error: dict[str, Any] | None = None
    ) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                update(d.deployments)
                .where(d.deployments.c.id == deployment_id)
                .values(
                    state=state,
                    error=json.dumps(error) if error else None,
                    updated_at=now_ms(),
                )
            )

    def save_replica(self, deployment_id: int, owner: str, slot: int, **values: Any) -> int:
        """Insert or update the replica row (deployment, slot, generation); returns its id."""
        generation = values.pop("generation")
        with self.db.transaction() as conn:
            where = and_(
                d.deployment_replicas.c.deployment_id == deployment_id,
                d.deployment_replicas.c.slot == slot,
                d.deployment_replicas.c.generation == generation,
            )
            found = conn.execute(select(d.deployment_replicas.c.id).where(where)).scalar()
            values["updated_at"] = now_ms()
            values["owner"] = owner
            if found is not None:
                conn.execute(
                    update(d.deployment_replicas)
                    .where(d.deployment_replicas.c.id == found)
                    .values(**values)
                )
                return int(found)
            exists = conn.execute(
                select(d.deployments.c.id).where(d.deployments.c.id == deployment_id)
            ).scalar()
            if exists is None:
                raise NotFound(f"Deployment {deployment_id} was deleted.")
            values.setdefault("state", ReplicaState.STARTING.value)
            return int(
                conn.execute(
                    insert(d.deployment_replicas).values(
                        deployment_id=deployment_id, slot=slot, generation=generation, **values
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            )

    def remove_replica(self, deployment_id: int, slot: int, generation: int) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                delete(d.deployment_replicas).where(
                    d.deployment_replicas.c.deployment_id == deployment_id,
                    d.deployment_replicas.c.slot == slot,
                    d.deployment_replicas.c.generation == generation,
                )
            )

    def replica_logs(self, workspace: str, endpoint: str) -> dict[str, list[tuple[int, int, str]]]:
        """Per deployment: (slot, generation, log file) of its replicas, newest first."""
        with self.db.transaction(write=False) as conn:
            ep = self._endpoint_row(conn, workspace, endpoint)
            rows = conn.execute(
                select(
                    d.deployments.c.name,
                    d.deployment_replicas.c.slot,
                    d.deployment_replicas.c.generation,
                    d.deployment_replicas.c.log_path,
                )
                .join(d.deployments, d.deployments.c.id == d.deployment_replicas.c.deployment_id)
                .where(d.deployments.c.endpoint_id == ep.id)
                .order_by(d.deployment_replicas.c.generation.desc(), d.deployment_replicas.c.slot)
            ).all()
        out: dict[str, list[tuple[int, int, str]]] = {}
        for r in rows:
            if r.log_path:
                out.setdefault(r.name, []).append((r.slot, r.generation, r.log_path))
        return out

    # ------------------------------------------------------------------ routing
    def routes(self, workspace: str, endpoint: str) -> dict[str, Any]:
        """What the router needs: auth, keys, traffic and the ready replicas' URLs."""
        with self.db.transaction(write=False) as conn:
            ep = self._endpoint_row(conn, workspace, endpoint)
            deps = conn.execute(
                select(d.deployments.c.id, d.deployments.c.name, d.deployments.c.spec).where(
                    d.deployments.c.endpoint_id == ep.id
                )
            ).all()
            ids = [r.id for r in deps]
            replicas = (
                conn.execute(
                    select(
                        d.deployment_replicas.c.deployment_id,
                        d.deployment_replicas.c.url,
                        d.deployment_replicas.c.slot,
                    ).where(
                        d.deployment_replicas.c.deployment_id.in_(ids),
                        d.deployment_replicas.c.state == ReplicaState.READY.value,
                    )
                ).all()
                if ids
                else []
            )
        specs = {int(r.id): _split_spec(r.spec) for r in deps}
        # Each ready replica's URL, with the secret the router sends it.
        urls: dict[int, dict[str, str]] = {}
        for r in replicas:
            secret = specs[int(r.deployment_id)][1]
            if r.url and secret:
                urls.setdefault(int(r.deployment_id), {})[r.url] = replica_secret(secret, r.slot)
        return {
            "auth_mode": ep.auth_mode,
            "keys": (ep.primary_key, ep.secondary_key),
            "traffic": json.loads(ep.traffic or "{}"),
            "mirror_traffic": json.loads(ep.mirror_traffic or "{}"),
            "deployments": {
                r.name: {
                    "id": int(r.id),
                    "urls": sorted(urls.get(int(r.id), {})),
                    "secrets": urls.get(int(r.id), {}),
                    "spec": specs[int(r.id)][0],
                }
                for r in deps
            },
        }

    # ------------------------------------------------------------------ metrics
    def add_metrics(self, source: str, rows: Iterable[dict[str, Any]]) -> None:
        """Merge per-minute counts written by one process (``source``) into its rows."""
        with self.db.transaction() as conn:
            for row in rows:
                key = and_(
                    d.deployment_metrics.c.deployment_id == row["deployment_id"],
                    d.deployment_metrics.c.minute == row["minute"],
                    d.deployment_metrics.c.source == source,
                )
                old = conn.execute(select(d.deployment_metrics).where(key)).first()
                if old is None:
                    alive = conn.execute(
                        select(d.deployments.c.id).where(d.deployments.c.id == row["deployment_id"])
                    ).scalar()
                    if alive is None:
                        continue
                    conn.execute(
                        insert(d.deployment_metrics).values(
                            deployment_id=row["deployment_id"],
                            minute=row["minute"],
                            source=source,
                            requests=row["requests"],
                            errors=row["errors"],
                            latency_sum_ms=row["latency_sum_ms"],
                            histogram=json.dumps(row["histogram"]),
                        )
                    )
                    continue
                hist = {int(k): v for k, v in json.loads(old.histogram).items()}
                for k, v in row["histogram"].items():
                    hist[int(k)] = hist.get(int(k), 0) + v
                conn.execute(
                    update(d.deployment_metrics)
                    .where(key)
                    .values(
                        requests=old.requests + row["requests"],
                        errors=old.errors + row["errors"],
                        latency_sum_ms=old.latency_sum_ms + row["latency_sum_ms"],
                        histogram=json.dumps(hist),
                    )
                )

    def metrics(self, deployment_ids: list[int], since: int) -> list[Row[Any]]:
        if not deployment_ids:
            return []
        with self.db.transaction(write=False) as conn:
            return list(
                conn.execute(
                    select(d.deployment_metrics)
                    .where(
                        d.deployment_metrics.c.deployment_id.in_(deployment_ids),
                        d.deployment_metrics.c.minute >= since,
                    )
                    .order_by(d.deployment_metrics.c.minute)
                ).all()
            )

    def add_request_logs(self, rows: list[dict[str, Any]], keep: int = 1000) -> None:
        """Store sampled requests, keeping the newest ``keep`` per deployment."""
        if not rows:
            return
        with self.db.transaction() as conn:
            conn.execute(insert(d.deployment_request_logs), rows)
            for dep_id in {r["deployment_id"] for r in rows}:
                cutoff = conn.execute(
                    select(d.deployment_request_logs.c.id)
                    .where(d.deployment_request_logs.c.deployment_id == dep_id)
                    .order_by(d.deployment_request_logs.c.id.desc())
                    .offset(keep)
                    .limit(1)
                ).scalar()
                if cutoff is not None:
                    conn.execute(
                        delete(d.deployment_request_logs).where(
                            d.deployment_request_logs.c.deployment_id == dep_id,
                            d.deployment_request_logs.c.id <= cutoff,
                        )
                    )

    def request_logs(self, deployment_ids: list[int], limit: int) -> list[Row[Any]]:
        if not deployment_ids:
            return []
        with self.db.transaction(write=False) as conn:
            return list(
                conn.execute(
                    select(d.deployment_request_logs)
                    .where(d.deployment_request_logs.c.deployment_id.in_(deployment_ids))
                    .order_by(d.deployment_request_logs.c.id.desc())
                    .limit(limit)
                ).all()
            )

    # ------------------------------------------------------------------ reading
    def _endpoint(self, conn: Connection, workspace: str, row: Row[Any]) -> EndpointInfo:
        deps = conn.execute(
            select(d.deployments)
            .where(d.deployments.c.endpoint_id == row.id)
            .order_by(d.deployments.c.created_at, d.deployments.c.id)
        ).all()
        return EndpointInfo(
            workspace=workspace,
            name=row.name,
            auth_mode=row.auth_mode,
            created_at=row.created_at,
            updated_at=row.updated_at,
            description=row.description,
            traffic=json.loads(row.traffic or "{}"),
            mirror_traffic=json.loads(row.mirror_traffic or "{}"),
            tags=json.loads(row.tags or "{}"),
            deployments=[self._deployment(conn, row.name, dep) for dep in deps],
            scoring_path=scoring_path(workspace, row.name),
            swagger_path=swagger_path(workspace, row.name),
        )

    def _deployment(self, conn: Connection, endpoint: str, row: Row[Any]) -> DeploymentInfo:
        replicas = conn.execute(
            select(d.deployment_replicas)
            .where(d.deployment_replicas.c.deployment_id == row.id)
            .order_by(d.deployment_replicas.c.slot, d.deployment_replicas.c.generation)
        ).all()
        spec = _split_spec(row.spec)[0]
        return DeploymentInfo(
            endpoint=endpoint,
            name=row.name,
            kind=row.kind,
            models=json.loads(row.models),
            generation=row.generation,
            state=row.state,
            created_at=row.created_at,
            updated_at=row.updated_at,
            replicas=int(spec.get("replicas", 1)),
            compute_target=spec.get("compute_target"),
            error=json.loads(row.error) if row.error else None,
            spec=spec,
            replica_states=[
                ReplicaInfo(
                    slot=r.slot,
                    generation=r.generation,
                    state=r.state,
                    pid=r.pid,
                    url=r.url,
                    restarts=r.restarts,
                    error=r.error,
                    started_at=r.started_at,
                    ready_at=r.ready_at,
                )
                for r in replicas
            ],
        )
