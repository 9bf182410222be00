"""The logged-model store: MLflow 3 logged models (a model's files logged from a run,
before any registration), their params, tags and metrics, and the lineage between
runs, datasets and logged models. Scoped by workspace like the registry store.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    Row,
    String,
    Text,
    and_,
    bindparam,
    cast,
    exists,
    insert,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)

from cumulo.core.entities import (
    DATASET_CONTEXT_TAG,
    DatasetInput,
    LoggedModelInfo,
    ModelMetric,
    RunLineage,
    now_ms,
)
from cumulo.core.errors import Conflict, InvalidInput, NotFound
from cumulo.core.pages import decode_token, encode_token
from cumulo.core.search import Clause, OrderBy
from cumulo.store import schema as t
from cumulo.store import schema_registry as r
from cumulo.store.prepared import Prepared
from cumulo.store.registry import RegistryScope, chunks, condition, kv_condition, ordered, set_kv

rm, mv, lm = r.registered_models, r.model_versions, r.logged_models

LOGGED_COLUMNS = {
    "id": lm.c.id,
    "name": lm.c.name,
    "model_type": lm.c.model_type,
    "status": lm.c.status,
    "source_run_id": lm.c.source_run_id,
    "experiment_id": lm.c.experiment_id,
    "created_at": lm.c.created_at,
    "updated_at": lm.c.updated_at,
}


class LoggedModelStore(RegistryScope):
    def create_logged_model(
        self,
        workspace: str,
        experiment_id: int,
        *,
        name: str,
        model_type: str | None = None,
        source_run_id: str | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        user: str = "",
    ) -> LoggedModelInfo:
        model_id = f"m-{uuid.uuid4().hex}"
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            exp = conn.execute(
                select(t.experiments.c.deleted).where(
                    t.experiments.c.id == experiment_id, t.experiments.c.workspace_id == ws_id
                )
            ).first()
            if exp is None:
                raise NotFound(f"Experiment {experiment_id} does not exist in this workspace.")
            now = now_ms()
            conn.execute(
                insert(lm).values(
                    id=model_id,
                    workspace_id=ws_id,
                    experiment_id=experiment_id,
                    name=name,
                    model_type=model_type,
                    source_run_id=source_run_id,
                    status="PENDING",
                    user=user,
                    created_at=now,
                    updated_at=now,
                )
            )
            for tbl, values in ((r.logged_model_params, params), (r.logged_model_tags, tags)):
                if values:
                    conn.execute(
                        insert(tbl),
                        [{"model_id": model_id, "key": k, "value": v} for k, v in values.items()],
                    )
            return self._logged(conn, workspace, [self._logged_row(conn, ws_id, model_id)])[0]

    def get_logged_model(
        self, workspace: str, model_id: str, allow_deleted: bool = False
    ) -> LoggedModelInfo:
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            row = self._logged_row(conn, ws_id, model_id, allow_deleted)
            return self._logged(conn, workspace, [row])[0]

    def update_logged_model(
        self,
        workspace: str,
        model_id: str,
        *,
        status: str | None = None,
        status_message: str | None = None,
        deleted: bool | None = None,
    ) -> LoggedModelInfo:
        values: dict[str, Any] = {"updated_at": now_ms()}
        if status is not None:
            values["status"] = status
        if status_message is not None:
            values["status_message"] = status_message
        if deleted is not None:
            values["deleted"] = deleted
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            self._logged_row(conn, ws_id, model_id)
            conn.execute(update(lm).where(lm.c.id == model_id).values(**values))
            row = self._logged_row(conn, ws_id, model_id, allow_deleted=True)
            return self._logged(conn, workspace, [row])[0]

    def set_logged_model_values(
        self,
        workspace: str,
        model_id: str,
        *,
        params: dict[str, str] | None = None,
        tags: dict[str, str | None] | None = None,
    ) -> None:
        """Add params (immutable once set) and set or delete (value None) tags."""
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            self._logged_row(conn, ws_id, model_id)
            p = r.logged_model_params
            existing = dict(
                conn.execute(select(p.c.key, p.c.value).where(p.c.model_id == model_id)).all()
            )
            fresh = {}
            for k, v in (params or {}).items():
                if k in existing and existing[k] != v:
                    raise Conflict(
                        f"Param {k!r} of logged model {model_id} is already {existing[k]!r}; "
                        f"params cannot change (got {v!r})."
                    )
                if k not in existing:
                    fresh[k] = v
            if fresh:
                conn.execute(
                    insert(p),
                    [{"model_id": model_id, "key": k, "value": v} for k, v in fresh.items()],
                )
            for k, value in (tags or {}).items():
                set_kv(conn, self._insert, r.logged_model_tags, "model_id", model_id, k, value)
            conn.execute(update(lm).where(lm.c.id == model_id).values(updated_at=now_ms()))

    def log_model_metrics(
        self, workspace: str, model_id: str, metrics: Sequence[ModelMetric]
    ) -> None:
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            self._logged_row(conn, ws_id, model_id)
            if metrics:
                conn.execute(
                    insert(r.logged_model_metrics),
                    [
                        {
                            "model_id": model_id,
                            "run_id": m.run_id,
                            "key": m.key,
                            "value": None if math.isnan(m.value) else m.value,
                            "is_nan": math.isnan(m.value),
                            "step": m.step,
                            "timestamp": m.timestamp,
                            "dataset_name": m.dataset_name,
                            "dataset_digest": m.dataset_digest,
                        }
                        for m in metrics
                    ],
                )

    def search_logged_models(
        self,
        workspace: str,
        experiment_ids: Sequence[int] | None = None,
        clauses: Sequence[Clause] = (),
        order_by: Sequence[OrderBy] = (),
        max_results: int = 100,
        page_token: str | None = None,
        datasets: Sequence[tuple[str, str | None]] = (),
    ) -> tuple[list[LoggedModelInfo], str | None]:
        """Models of ``workspace`` that match; with ``datasets`` (name, digest or None for
        any), only those with a metric logged against one of those datasets."""
        offset = decode_token(page_token)
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            q = select(lm).where(lm.c.workspace_id == ws_id, ~lm.c.deleted)
            if experiment_ids is not None:
                q = q.where(lm.c.experiment_id.in_(list(experiment_ids)))
            for c in clauses:
                if c.entity == "param":
                    q = q.where(kv_condition(c, lm.c.id, r.logged_model_params, "model_id"))
                else:
                    q = q.where(condition(c, LOGGED_COLUMNS, lm.c.id, r.logged_model_tags, "model"))
            if datasets:
                mm = r.logged_model_metrics
                on_any = or_(
                    *(
                        and_(
                            mm.c.dataset_name == name,
                            true() if digest is None else mm.c.dataset_digest == digest,
                        )
                        for name, digest in datasets
                    )
                )
                q = q.where(lm.c.id.in_(select(mm.c.model_id).where(on_any)))
            q = ordered(q, order_by, LOGGED_COLUMNS, [lm.c.created_at.desc(), lm.c.id])
            rows = conn.execute(q.offset(offset).limit(max_results + 1)).all()
            models = self._logged(conn, workspace, rows[:max_results])
        return models, encode_token(offset + max_results) if len(rows) > max_results else None

    def _logged(
        self, conn: Connection, workspace: str, rows: Sequence[Row[Any]]
    ) -> list[LoggedModelInfo]:
        if not rows:
            return []
        ids = [row.id for row in rows]
        params: dict[str, dict[str, str]] = {}
        tags: dict[str, dict[str, str]] = {}
        metrics: dict[str, list[ModelMetric]] = {}
        registrations: dict[str, list[dict[str, Any]]] = {}
        mm = r.logged_model_metrics
        for chunk in chunks(ids):
            for tbl, target in ((r.logged_model_params, params), (r.logged_model_tags, tags)):
                for mid, k, v in conn.execute(select(tbl).where(tbl.c.model_id.in_(chunk))):
                    target.setdefault(mid, {})[k] = v
            for m in conn.execute(select(mm).where(mm.c.model_id.in_(chunk)).order_by(mm.c.id)):
                metrics.setdefault(m.model_id, []).append(
                    ModelMetric(
                        key=m.key,
                        value=math.nan if m.is_nan else m.value,
                        step=m.step,
                        timestamp=m.timestamp,
                        run_id=m.run_id,
                        dataset_name=m.dataset_name,
                        dataset_digest=m.dataset_digest,
                    )
                )
            for mid, name, version in conn.execute(
                select(mv.c.logged_model_id, rm.c.name, mv.c.version)
                .join(rm, rm.c.id == mv.c.model_id)
                .where(mv.c.logged_model_id.in_(chunk))
                .order_by(rm.c.name, mv.c.version)
            ):
                registrations.setdefault(mid, []).append({"name": name, "version": version})
        return [
            LoggedModelInfo(
                id=row.id,
                workspace=workspace,
                experiment_id=row.experiment_id,
                name=row.name,
                created_at=row.created_at,
                updated_at=row.updated_at,
                model_type=row.model_type,
                source_run_id=row.source_run_id,
                status=row.status,
                status_message=row.status_message,
                user=row.user,
                deleted=row.deleted,
                params=params.get(row.id, {}),
                tags=tags.get(row.id, {}),
                metrics=metrics.get(row.id, []),
                registrations=registrations.get(row.id, []),
            )
            for row in rows
        ]

    # ---------------------------------------------------------------- lineage
    def link_models(
        self, workspace: str, run_id: str, links: Iterable[tuple[str, int]], direction: str
    ) -> None:
        """Record logged models a run used (``input``) or produced (``output``) at a step."""
        if direction not in ("input", "output"):
            raise InvalidInput(f"A model link is an input or an output, not {direction!r}.")
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            self._check_run(conn, ws_id, run_id)
            tbl = r.run_model_links
            for model_id, step in links:
                self._logged_row(conn, ws_id, model_id)
                stmt = self._insert(tbl).values(
                    run_id=run_id, model_id=model_id, direction=direction, step=step
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[tbl.c.run_id, tbl.c.model_id, tbl.c.direction],
                        set_={"step": step},
                    )
                )

    def add_dataset_inputs(
        self, workspace: str, run_id: str, datasets: Sequence[DatasetInput]
    ) -> None:
        with self.db.transaction() as conn:
            ws_id = self._workspace_id(conn, workspace)
            self._check_run(conn, ws_id, run_id)
            tbl = r.run_dataset_inputs
            for d in datasets:
                values = {
                    "source_type": d.source_type,
                    "source": d.source,
                    "schema": d.schema,
                    "profile": d.profile,
                    "tags": json.dumps(d.tags),
                }
                stmt = self._insert(tbl).values(
                    run_id=run_id, name=d.name, digest=d.digest, **values
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[tbl.c.run_id, tbl.c.name, tbl.c.digest], set_=values
                    )
                )

    def dataset_summaries(
        self, workspace: str, experiment_ids: Sequence[int], limit: int
    ) -> list[tuple[int, str, str, str | None]]:
        """``(experiment_id, name, digest, context or None)`` of the datasets the runs of
        those experiments read, each once, at most ``limit``."""
        ri = r.run_dataset_inputs
        out: dict[tuple[int, str, str, str | None], None] = {}
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            found = conn.execute(
                select(t.runs.c.experiment_id, ri.c.name, ri.c.digest, ri.c.tags)
                .join(t.runs, t.runs.c.id == ri.c.run_id)
                .where(
                    t.runs.c.workspace_id == ws_id,
                    t.runs.c.experiment_id.in_(list(experiment_ids)),
                )
                .order_by(ri.c.id)
            )
            for exp_id, name, digest, tags in found:
                context = json.loads(tags).get(DATASET_CONTEXT_TAG)
                out[(exp_id, name, digest, context)] = None
                if len(out) >= limit:
                    break
        return list(out)

    def lineage(self, workspace: str, run_ids: Sequence[str]) -> dict[str, RunLineage]:
        """Datasets and logged models linked to each run (runs of other workspaces are ignored)."""
        out = {run_id: RunLineage(run_id) for run_id in run_ids}
        if not run_ids:
            return out
        with self.db.transaction(write=False) as conn:
            ws_id = self._workspace_id(conn, workspace)
            for chunk in chunks(list(run_ids)):
                found = _LINEAGE.rows(conn, {"ids": chunk, "ws_id": ws_id})
                for kind, run_id, a, b, c, d, e, f, g, number in found:
                    item = out[run_id]
                    if kind == "input":
                        item.model_inputs.append(a)
                    elif kind == "output":
                        item.model_outputs.append((a, number))
                    else:
                        item.datasets.append(
                            DatasetInput(
                                name=a,
                                digest=b,
                                source_type=c,
                                source=d,
                                schema=e,
                                profile=f,
                                tags=json.loads(g),
                            )
                        )
        return out


def _lineage_query() -> Any:
    """Model links and dataset inputs of the runs ``ids`` of workspace ``ws_id``, in one
    query: rows of (kind, run_id, seven texts, number), models by step, datasets in order.

    Each row's run is checked by its key (``EXISTS``): a list of the workspace's runs
    (``IN (SELECT ...)``) had SQLite read every run of the workspace."""
    ids: Any = bindparam("ids", expanding=True)

    def owned(run_id: Any) -> Any:
        return and_(
            run_id.in_(ids),
            exists().where(t.runs.c.id == run_id, t.runs.c.workspace_id == bindparam("ws_id")),
        )

    links, ds = r.run_model_links, r.run_dataset_inputs
    models = select(
        links.c.direction.label("kind"),
        links.c.run_id,
        links.c.model_id,
        *[cast(null(), Text).label(f"text{i}") for i in range(6)],
        links.c.step.label("number"),
        literal_column("0", Integer).label("family"),
    ).where(owned(links.c.run_id))
    datasets = select(
        literal_column("'dataset'", String).label("kind"),
        ds.c.run_id,
        ds.c.name,
        ds.c.digest,
        ds.c.source_type,
        ds.c.source,
        ds.c.schema,
        ds.c.profile,
        ds.c.tags,
        cast(ds.c.id, BigInteger).label("number"),
        literal_column("1", Integer).label("family"),
    ).where(owned(ds.c.run_id))
    both = union_all(models, datasets).subquery()
    return select(*[c for c in both.c if c.name != "family"]).order_by(both.c.family, both.c.number)


_LINEAGE = Prepared(_lineage_query())
