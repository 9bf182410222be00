"""MLflow's run search grammar: ``metrics.acc > 0.9 AND params.model = 'rf'``.

Clauses are joined by AND only. Identifiers are ``metrics.k``, ``params.k``,
``tags.k``, ``attributes.k`` (with MLflow's aliases); keys with special
characters are quoted with backticks or double quotes. This module parses and
checks; the store turns the result into SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cumulo.core.errors import InvalidInput

_PREFIXES = {
    "metrics": "metric",
    "metric": "metric",
    "params": "param",
    "param": "param",
    "parameters": "param",
    "parameter": "param",
    "tags": "tag",
    "tag": "tag",
    "attributes": "attribute",
    "attribute": "attribute",
    "attr": "attribute",
    "run": "attribute",
}

# Attribute names users may write, mapped to the canonical name the store knows.
ATTRIBUTES = {
    "run_id": "run_id",
    "id": "run_id",
    "run_name": "display_name",
    "run name": "display_name",
    "display_name": "display_name",
    "status": "status",
    "user_id": "user",
    "user": "user",
    "start_time": "created_at",
    "created": "created_at",
    "created_at": "created_at",
    "end_time": "ended_at",
    "ended_at": "ended_at",
    "number": "number",
    "kind": "kind",
    "compute_target": "compute_target",
    "parent_id": "parent_id",
    "duration": "duration",
}
NUMERIC_ATTRIBUTES = {"created_at", "ended_at", "number", "duration"}

# MLflow's run statuses, accepted wherever a status is compared.
MLFLOW_STATUS = {
    "RUNNING": "Running",
    "SCHEDULED": "Queued",
    "FINISHED": "Completed",
    "FAILED": "Failed",
    "KILLED": "Canceled",
}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
      | (?P<bt>`[^`]*`)
      | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
      | (?P<op>!=|<>|>=|<=|=|<|>)
      | (?P<lp>\()|(?P<rp>\))|(?P<comma>,)
      | (?P<word>[\w.\-/:]+)
      | (?P<dot>\.)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Clause:
    entity: str  # metric | param | tag | attribute
    key: str
    op: str  # = != > >= < <= LIKE ILIKE IN NOT IN IS NULL IS NOT NULL
    value: Any = None


@dataclass(frozen=True)
class OrderBy:
    entity: str
    key: str
    ascending: bool = True


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise InvalidInput(f"Invalid filter near {text[pos : pos + 20]!r} (position {pos}).")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _unquote(raw: str) -> str:
    if raw[0] == "'":
        return raw[1:-1].replace("''", "'").replace("\\'", "'")
    if raw[0] in '"`':
        return raw[1:-1].replace('\\"', '"')
    return raw


def _identifier(tokens: list[tuple[str, str]], i: int, text: str) -> tuple[str, str, int]:
    """Read ``prefix.key`` starting at tokens[i]; return (entity, key, next index)."""
    kind, raw = tokens[i]
    if kind in ("str", "bt"):
        # A quoted bare attribute, e.g. "run name".
        name = _unquote(raw)
        return "attribute", _attribute(name, text), i + 1
    if kind != "word":
        raise InvalidInput(f"Invalid filter {text!r}: expected an identifier, got {raw!r}.")
    if "." not in raw:
        if i + 2 < len(tokens) and tokens[i + 1][0] == "dot":
            prefix, key_tok = raw, tokens[i + 2]
            entity = _PREFIXES.get(prefix.lower())
            if entity is None:
                raise InvalidInput(_bad_prefix(prefix))
            return entity, _key(entity, _unquote(key_tok[1]), text), i + 3
        return "attribute", _attribute(raw, text), i + 1
    prefix, _, rest = raw.partition(".")
    entity = _PREFIXES.get(prefix.lower())
    if entity is None:
        raise InvalidInput(_bad_prefix(prefix))
    if rest == "" and i + 1 < len(tokens) and tokens[i + 1][0] in ("str", "bt"):
        return entity, _key(entity, _unquote(tokens[i + 1][1]), text), i + 2
    if not rest:
        raise InvalidInput(f"Invalid filter {text!r}: {prefix}. needs a key after the dot.")
    return entity, _key(entity, rest, text), i + 1


def _bad_prefix(prefix: str) -> str:
    return (
        f"Unknown identifier type {prefix!r}; use metrics.<key>, params.<key>, tags.<key> "
        "or attributes.<name>."
    )


def _key(entity: str, key: str, text: str) -> str:
    if entity == "attribute":
        return _attribute(key, text)
    if not key:
        raise InvalidInput(f"Invalid filter {text!r}: empty key.")
    return key


def _attribute(name: str, text: str) -> str:
    canonical = ATTRIBUTES.get(name.lower()) or ATTRIBUTES.get(name)
    if canonical is None:
        known = ", ".join(sorted(set(ATTRIBUTES)))
        raise InvalidInput(f"Unknown run attribute {name!r} in {text!r}; known: {known}.")
    return canonical


def parse_filter(text: str | None) -> list[Clause]:
    if text is None or not text.strip():
        return []
    tokens = _tokens(text)
    clauses: list[Clause] = []
    i = 0
    while i < len(tokens):
        entity, key, i = _identifier(tokens, i, text)
        clause, i = _comparison(entity, key, tokens, i, text)
        clauses.append(clause)
        if i < len(tokens):
            kind, raw = tokens[i]
            if kind == "word" and raw.upper() == "AND":
                i += 1
                if i >= len(tokens):
                    raise InvalidInput(f"Invalid filter {text!r}: nothing after AND.")
                continue
            if kind == "word" and raw.upper() == "OR":
                raise InvalidInput(f"Invalid filter {text!r}: OR is not supported, only AND.")
            raise InvalidInput(f"Invalid filter {text!r}: expected AND, got {raw!r}.")
    return clauses


def _comparison(
    entity: str, key: str, tokens: list[tuple[str, str]], i: int, text: str
) -> tuple[Clause, int]:
    if i >= len(tokens):
        raise InvalidInput(f"Invalid filter {text!r}: a comparison is missing after {key!r}.")
    kind, raw = tokens[i]
    upper = raw.upper()
    if kind == "op":
        op = "!=" if raw == "<>" else raw
        i += 1
    elif kind == "word" and upper in ("LIKE", "ILIKE", "IN"):
        op, i = upper, i + 1
    elif kind == "word" and upper == "NOT" and i + 1 < len(tokens):
        if tokens[i + 1][1].upper() != "IN":
            raise InvalidInput(f"Invalid filter {text!r}: expected NOT IN.")
        op, i = "NOT IN", i + 2
    elif kind == "word" and upper == "IS":
        if i + 1 < len(tokens) and tokens[i + 1][1].upper() == "NULL":
            return _checked(Clause(entity, key, "IS NULL"), text), i + 2
        if (
            i + 2 < len(tokens)
            and tokens[i + 1][1].upper() == "NOT"
            and tokens[i + 2][1].upper() == "NULL"
        ):
            return _checked(Clause(entity, key, "IS NOT NULL"), text), i + 3
        raise InvalidInput(f"Invalid filter {text!r}: expected IS NULL or IS NOT NULL.")
    else:
        raise InvalidInput(f"Invalid filter {text!r}: expected a comparator, got {raw!r}.")
    if op in ("IN", "NOT IN"):
        values, i = _tuple(tokens, i, text)
        return _checked(Clause(entity, key, op, values), text), i
    if i >= len(tokens):
        raise InvalidInput(f"Invalid filter {text!r}: a value is missing after {op}.")
    vkind, vraw = tokens[i]
    value: Any
    if vkind == "num":
        value = float(vraw)
    elif vkind == "str":
        value = _unquote(vraw)
    else:
        raise InvalidInput(
            f"Invalid filter {text!r}: {vraw!r} is not a value; quote strings ('...')."
        )
    return _checked(Clause(entity, key, op, value), text), i + 1


def _tuple(tokens: list[tuple[str, str]], i: int, text: str) -> tuple[tuple[str, ...], int]:
    if i >= len(tokens) or tokens[i][0] != "lp":
        raise InvalidInput(f"Invalid filter {text!r}: IN needs a list like ('a', 'b').")
    i += 1
    values: list[str] = []
    while i < len(tokens):
        kind, raw = tokens[i]
        if kind == "rp":
            return tuple(values), i + 1
        if kind == "comma":
            i += 1
            continue
        if kind != "str":
            raise InvalidInput(f"Invalid filter {text!r}: IN lists hold quoted strings only.")
        values.append(_unquote(raw))
        i += 1
    raise InvalidInput(f"Invalid filter {text!r}: the IN list is not closed.")


def _checked(clause: Clause, text: str) -> Clause:
    e, op, v = clause.entity, clause.op, clause.value
    numeric = e == "metric" or (e == "attribute" and clause.key in NUMERIC_ATTRIBUTES)
    if op in ("IN", "NOT IN"):
        if not (e == "attribute" and clause.key in ("run_id", "status", "display_name")):
            raise InvalidInput(f"Invalid filter {text!r}: IN works on run_id, status and names.")
    elif op in ("IS NULL", "IS NOT NULL"):
        if e not in ("param", "tag", "metric"):
            raise InvalidInput(f"Invalid filter {text!r}: IS NULL works on params, tags, metrics.")
    elif numeric:
        if op in ("LIKE", "ILIKE"):
            raise InvalidInput(f"Invalid filter {text!r}: {op} needs a string field.")
        if not isinstance(v, float):
            raise InvalidInput(
                f"Invalid filter {text!r}: {e} {clause.key!r} is compared with a number, got {v!r}."
            )
    else:
        if op in (">", ">=", "<", "<="):
            raise InvalidInput(
                f"Invalid filter {text!r}: {op} needs a number field; {e} values are strings."
            )
        if not isinstance(v, str):
            raise InvalidInput(
                f"Invalid filter {text!r}: {e} {clause.key!r} is compared with a quoted string."
            )
    if e == "attribute" and clause.key == "status":
        if isinstance(v, str):
            return Clause(e, clause.key, op, MLFLOW_STATUS.get(v.upper(), v))
        if isinstance(v, tuple):
            return Clause(e, clause.key, op, tuple(MLFLOW_STATUS.get(x.upper(), x) for x in v))
    return clause


def parse_order_by(items: list[str] | str | None) -> list[OrderBy]:
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    out: list[OrderBy] = []
    seen: set[tuple[str, str]] = set()
    for item in items:
        text = item.strip()
        ascending = True
        m = re.search(r"\s+(ASC|DESC)$", text, re.IGNORECASE)
        if m:
            ascending = m.group(1).upper() == "ASC"
            text = text[: m.start()]
        tokens = _tokens(text)
        if not tokens:
            raise InvalidInput(f"Invalid order_by {item!r}: empty.")
        entity, key, i = _identifier(tokens, 0, text)
        if i != len(tokens):
            raise InvalidInput(f"Invalid order_by {item!r}: use '<identifier> [ASC|DESC]'.")
        if (entity, key) in seen:
            raise InvalidInput(f"order_by names {entity} {key!r} twice.")
        seen.add((entity, key))
        out.append(OrderBy(entity, key, ascending))
    return out
