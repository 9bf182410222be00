"""MLflow's filter and order grammar for experiments, registered models, model
versions and logged models (runs use ``core.search``).

``name LIKE 'iris%' AND tags.team = 'vision'``: clauses joined by AND, an
identifier (an attribute, ``tags.<key>`` or, for logged models, ``params.<key>``;
keys with special characters quoted with backticks or double quotes), a
comparator and a quoted string or a number. The result is a list of
``core.search.Clause`` with the attribute names the registry store knows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from cumulo.core.errors import InvalidInput
from cumulo.core.search import Clause, OrderBy

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
NUMERIC = {"created_at", "updated_at", "last_activity", "version"}

_PREFIXES = {
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "tag": "tag",
    "tags": "tag",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "metric": "metric",
    "metrics": "metric",
}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
      | (?P<bt>`[^`]*`)
      | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
      | (?P<op>!=|<>|>=|<=|=|<|>)
      | (?P<lp>\()|(?P<rp>\))|(?P<comma>,)
      | (?P<word>[\w\-/:]+)
      | (?P<dot>\.)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos, text = 0, text.rstrip()
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


class _Parser:
    def __init__(self, text: str, attributes: dict[str, str], prefixes: set[str]) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0
        self.attributes = attributes
        self.prefixes = prefixes

    def fail(self, why: str) -> InvalidInput:
        return InvalidInput(f"Invalid filter {self.text!r}: {why}")

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def next_is(self, kind: str | None = None, word: str | None = None) -> bool:
        token = self.peek()
        if token is None or (kind is not None and token[0] != kind):
            return False
        return word is None or token[1].upper() == word

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise self.fail("it ends too early.")
        self.i += 1
        return token

    def identifier(self) -> tuple[str, str]:
        kind, raw = self.take()
        if kind in ("str", "bt"):
            return "attribute", self.attribute(_unquote(raw))
        if kind != "word":
            raise self.fail(f"expected a name, got {raw!r}.")
        if self.next_is("dot"):
            entity = _PREFIXES.get(raw.lower())
            if entity is None or entity not in self.prefixes:
                allowed = ", ".join(sorted(p + ".<key>" for p in self.prefixes - {"attribute"}))
                raise self.fail(f"unknown prefix {raw!r}; use an attribute or {allowed}.")
            self.i += 1
            key_kind, key_raw = self.take()
            key = _unquote(key_raw) if key_kind in ("str", "bt") else key_raw
            # An unquoted key may itself hold dots (tags.mlflow.note): join the parts.
            while key_kind == "word" and self.next_is("dot"):
                self.i += 1
                key += "." + self.take()[1]
            if not key:
                raise self.fail("empty key.")
            return entity, self.attribute(key) if entity == "attribute" else key
        return "attribute", self.attribute(raw)

    def attribute(self, name: str) -> str:
        found = self.attributes.get(name) or self.attributes.get(name.lower())
        if found is None:
            known = ", ".join(sorted(self.attributes))
            raise self.fail(f"unknown attribute {name!r}; known: {known}.")
        return found

    def value(self) -> Any:
        kind, raw = self.take()
        if kind == "num":
            return float(raw)
        if kind == "str":
            return _unquote(raw)
        raise self.fail(f"{raw!r} is not a value; quote strings ('...').")

    def clause(self) -> Clause:
        entity, key = self.identifier()
        kind, raw = self.take()
        word = raw.upper()
        if kind == "op":
            op = "!=" if raw == "<>" else raw
            return self.checked(Clause(entity, key, op, self.value()))
        if kind == "word" and word in ("LIKE", "ILIKE"):
            return self.checked(Clause(entity, key, word, self.value()))
        if kind == "word" and word == "IS":
            negate = self.next_is("word", "NOT")
            if negate:
                self.i += 1
            if self.take()[1].upper() != "NULL":
                raise self.fail("expected IS NULL or IS NOT NULL.")
            op = "IS NOT NULL" if negate else "IS NULL"
            if entity == "attribute":
                raise self.fail(f"{op} works on tags and params only.")
            return Clause(entity, key, op)
        if kind == "word" and word in ("IN", "NOT"):
            if word == "NOT" and self.take()[1].upper() != "IN":
                raise self.fail("expected NOT IN.")
            return self.checked(
                Clause(entity, key, "IN" if word == "IN" else "NOT IN", self.items())
            )
        raise self.fail(f"expected a comparator, got {raw!r}.")

    def items(self) -> tuple[Any, ...]:
        if self.take()[0] != "lp":
            raise self.fail("IN needs a list like ('a', 'b').")
        values: list[Any] = []
        while True:
            kind, raw = self.take()
            if kind == "rp":
                return tuple(values)
            if kind == "comma":
                continue
            if kind == "str":
                values.append(_unquote(raw))
            elif kind == "num":
                values.append(float(raw))
            else:
                raise self.fail(f"{raw!r} cannot be in an IN list.")

    def checked(self, c: Clause) -> Clause:
        if c.entity == "metric":
            raise self.fail("filtering by metrics is not supported here.")
        numeric = c.entity == "attribute" and c.key in NUMERIC
        values = c.value if isinstance(c.value, tuple) else (c.value,)
        if numeric:
            if c.op in ("LIKE", "ILIKE"):
                raise self.fail(f"{c.op} needs a text field, not {c.key!r}.")
            try:
                numbers = tuple(int(float(v)) for v in values)
            except ValueError:
                raise self.fail(f"{c.key!r} is compared with numbers.") from None
            value = numbers if isinstance(c.value, tuple) else numbers[0]
            return Clause(c.entity, c.key, c.op, value)
        if c.op in (">", ">=", "<", "<="):
            raise self.fail(f"{c.op} needs a number field; {c.key!r} is text.")
        if any(not isinstance(v, str) for v in values):
            raise self.fail(f"{c.key!r} is compared with quoted strings.")
        return c

    def parse(self) -> list[Clause]:
        out: list[Clause] = []
        while self.peek() is not None:
            out.append(self.clause())
            nxt = self.peek()
            if nxt is None:
                break
            if nxt[0] == "word" and nxt[1].upper() == "AND":
                self.i += 1
                if self.peek() is None:
                    raise self.fail("nothing after AND.")
                continue
            if nxt[0] == "word" and nxt[1].upper() == "OR":
                raise self.fail("OR is not supported, only AND.")
            raise self.fail(f"expected AND, got {nxt[1]!r}.")
        return out


def parse_filter(
    text: str | None, attributes: dict[str, str], prefixes: Sequence[str] = ("attribute", "tag")
) -> list[Clause]:
    if text is None or not text.strip():
        return []
    return _Parser(text, attributes, set(prefixes)).parse()


def parse_order_by(items: Sequence[str], attributes: dict[str, str]) -> list[OrderBy]:
    out: list[OrderBy] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise InvalidInput(f"Invalid order_by {item!r}.")
        text = item.strip()
        ascending = True
        m = re.search(r"\s+(ASC|DESC)$", text, re.IGNORECASE)
        if m:
            ascending = m.group(1).upper() == "ASC"
            text = text[: m.start()].strip()
        parser = _Parser(text, attributes, {"attribute"})
        entity, key = parser.identifier()
        if parser.peek() is not None:
            raise InvalidInput(f"Invalid order_by {item!r}: use '<attribute> [ASC|DESC]'.")
        if any(o.key == key for o in out):
            raise InvalidInput(f"order_by names {key!r} twice.")
        out.append(OrderBy(entity, key, ascending))
    return out


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
    ops = {
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
