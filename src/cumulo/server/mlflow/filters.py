"""What experiments, registered models, model versions and logged models are searched by.

The grammar is MLflow's, parsed by ``core.search`` (``name LIKE 'iris%' AND
tags.team = 'vision'``); these grammars map the names MLflow's clients write
to the attribute names the stores know. ``matches`` filters in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from cumulo.core.errors import InvalidInput
from cumulo.core.search import Clause, Grammar, OrderBy, parse_order_by

# What a user may write -> the canonical attribute name, per entity.
EXPERIMENT_ATTRIBUTES = {
    "name": "name",
    "experiment_id": "id",
    "id": "id",
    "creation_time": "created_at",
    "last_update_time": "last_activity",
}
MODEL_ATTRIBUTES = {
    "name": "name",
    "creation_timestamp": "created_at",
    "timestamp": "created_at",
    "last_updated_timestamp": "updated_at",
}
VERSION_ATTRIBUTES = {
    "name": "name",
    "run_id": "run_id",
    "version_number": "version",
    "version": "version",
    "source_path": "source",
    "source": "source",
    "current_stage": "stage",
    "model_id": "logged_model_id",
    "creation_timestamp": "created_at",
    "timestamp": "created_at",
    "last_updated_timestamp": "updated_at",
}
LOGGED_MODEL_ATTRIBUTES = {
    "name": "name",
    "model_id": "id",
    "model_type": "model_type",
    "status": "status",
    "source_run_id": "source_run_id",
    "creation_timestamp": "created_at",
    "creation_time": "created_at",
    "last_updated_timestamp": "updated_at",
    "last_updated_time": "updated_at",
}
NUMERIC = frozenset({"created_at", "updated_at", "last_activity", "version"})

EXPERIMENTS = Grammar("experiment", EXPERIMENT_ATTRIBUTES, NUMERIC)
REGISTERED_MODELS = Grammar("registered model", MODEL_ATTRIBUTES, NUMERIC)
MODEL_VERSIONS = Grammar("model version", VERSION_ATTRIBUTES, NUMERIC)
LOGGED_MODELS = Grammar(
    "logged model", LOGGED_MODEL_ATTRIBUTES, NUMERIC, frozenset({"attribute", "tag", "param"})
)


def _like(pattern: str, flags: int = 0) -> re.Pattern[str]:
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern]
    return re.compile("^" + "".join(parts) + "$", flags | re.DOTALL)


def matches(c: Clause, value: Any) -> bool:
    """Whether ``value`` (None when absent) satisfies one clause, for in-memory filtering."""
    if c.op == "IS NULL":
        return value is None
    if c.op == "IS NOT NULL":
        return value is not None
    if value is None:
        return False
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        "LIKE": lambda a, b: bool(_like(b).match(a)),
        "ILIKE": lambda a, b: bool(_like(b, re.IGNORECASE).match(a)),
        "IN": lambda a, b: a in b,
        "NOT IN": lambda a, b: a not in b,
    }
    return bool(ops[c.op](value, c.value))


def attribute_order(items: Sequence[str], grammar: Grammar) -> list[OrderBy]:
    """Order terms for entities that sort by attributes only."""
    orders = parse_order_by(list(items), grammar)
    for o in orders:
        if o.entity != "attribute":
            raise InvalidInput(f"{grammar.what.capitalize()}s are ordered by attributes only.")
    return orders
