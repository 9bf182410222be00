"""Run search in SQL: filter clauses and ordering."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, exists, false, func, or_

from cumulo.core.errors import InvalidInput
from cumulo.core.search import Clause, OrderBy
from cumulo.store import schema as t

_ATTRIBUTE_COLUMNS = {
    "run_id": t.runs.c.id,
    "display_name": t.runs.c.display_name,
    "status": t.runs.c.status,
    "user": t.runs.c.user,
    "created_at": t.runs.c.created_at,
    "ended_at": t.runs.c.ended_at,
    "number": t.runs.c.number,
    "kind": t.runs.c.kind,
    "compute_target": t.runs.c.compute_target,
    "parent_id": t.runs.c.parent_id,
    "duration": (t.runs.c.ended_at - t.runs.c.started_at) / 1000.0,
}


def compare(col: Any, op: str, value: Any) -> Any:
    """``col <op> value`` for the comparators of the search grammar."""
    if op == "=":
        return col == value
    if op == "!=":
        return col != value
    if op == ">":
        return col > value
    if op == ">=":
        return col >= value
    if op == "<":
        return col < value
    if op == "<=":
        return col <= value
    if op == "LIKE":
        return col.like(value)
    if op == "ILIKE":
        return func.lower(col).like(func.lower(value))
    if op == "IN":
        return col.in_(list(value))
    if op == "NOT IN":
        return col.not_in(list(value))
    raise InvalidInput(f"Unsupported comparator {op!r}.")


def clause_sql(c: Clause) -> Any:
    if c.entity == "attribute":
        return compare(_ATTRIBUTE_COLUMNS[c.key], c.op, c.value)
    if c.entity == "metric":
        lm = t.latest_metrics
        base = [lm.c.run_id == t.runs.c.id, lm.c.key == c.key]
        if c.op == "IS NULL":
            return ~exists().where(*base)
        if c.op == "IS NOT NULL":
            return exists().where(*base)
        return exists().where(*base, ~lm.c.is_nan, compare(lm.c.value, c.op, c.value))
    tbl = t.params if c.entity == "param" else t.tags
    base = [tbl.c.run_id == t.runs.c.id, tbl.c.key == c.key]
    if c.op == "IS NULL":
        return ~exists().where(*base)
    if c.op == "IS NOT NULL":
        return exists().where(*base)
    return exists().where(*base, compare(tbl.c.value, c.op, c.value))


def apply_order(q: Select[Any], orders: list[OrderBy]) -> Select[Any]:
    terms: list[Any] = []
    for i, o in enumerate(orders):
        if o.entity == "attribute":
            col = _ATTRIBUTE_COLUMNS[o.key]
            terms.append(col.is_(None))  # missing values last, both directions
            terms.append(col.asc() if o.ascending else col.desc())
            continue
        if o.entity == "metric":
            lm = t.latest_metrics.alias(f"order_m{i}")
            q = q.outerjoin(lm, and_(lm.c.run_id == t.runs.c.id, lm.c.key == o.key))
            terms.append(or_(lm.c.value.is_(None), lm.c.is_nan.is_(None), lm.c.is_nan != false()))
            terms.append(lm.c.value.asc() if o.ascending else lm.c.value.desc())
            continue
        tbl = (t.params if o.entity == "param" else t.tags).alias(f"order_kv{i}")
        q = q.outerjoin(tbl, and_(tbl.c.run_id == t.runs.c.id, tbl.c.key == o.key))
        terms.append(tbl.c.value.is_(None))
        terms.append(tbl.c.value.asc() if o.ascending else tbl.c.value.desc())
    terms += [t.runs.c.created_at.desc(), t.runs.c.id]
    return q.order_by(*terms)
