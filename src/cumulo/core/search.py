"""MLflow's search grammar: ``metrics.acc > 0.9 AND params.model = 'rf'``.

Clauses are joined by AND only. An identifier is an attribute (bare or
``attributes.<name>``) or ``metrics.<key>``, ``params.<key>``, ``tags.<key>``
(with MLflow's aliases); keys with special characters are quoted with
backticks or double quotes. A ``Grammar`` says which of these an entity
(runs, experiments, registered models...) knows; ``RUNS`` is the runs' one.
This module parses and checks; the stores turn clauses into SQL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cumulo.core.errors import InvalidInput

PREFIXES = {
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "tag": "tag",
    "tags": "tag",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "metric": "metric",
    "metrics": "metric",
}

# MLflow's run statuses, accepted wherever a run status is compared.
MLFLOW_STATUS = {
    "RUNNING": "Running",
    "SCHEDULED": "Queued",
    "FINISHED": "Completed",
    "FAILED": "Failed",
    "KILLED": "Canceled",
}


@dataclass(frozen=True)
class Grammar:
    """What one kind of entity can be searched by."""

    what: str  # "run", "experiment"...: named in error messages
    attributes: Mapping[str, str]  # name a user writes -> canonical name
    numeric: frozenset[str]  # canonical attributes compared with numbers
    prefixes: frozenset[str] = frozenset({"attribute", "tag"})
    in_attributes: frozenset[str] | None = None  # where IN may be used (None: any attribute)
    in_prefixes: frozenset[str] = frozenset()  # metric, param, tag: IN works on their values
    integers: bool = True  # numbers become ints (timestamps, versions) or stay floats
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # per attribute


RUNS = Grammar(
    what="run",
    attributes={
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
    },
    numeric=frozenset({"created_at", "ended_at", "number", "duration"}),
    prefixes=frozenset({"attribute", "tag", "param", "metric"}),
    in_attributes=None,
    in_prefixes=frozenset({"param", "tag", "metric"}),
    integers=False,
    values={"status": MLFLOW_STATUS},
)

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
    def __init__(self, text: str, grammar: Grammar, what: str = "filter") -> None:
        self.text = text
        self.grammar = grammar
        self.what = what
        self.tokens = _tokens(text)
        self.i = 0

    def fail(self, why: str) -> InvalidInput:
        return InvalidInput(f"Invalid {self.what} {self.text!r}: {why}")

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def next_is(self, kind: str, word: str | None = None) -> bool:
        token = self.peek()
        if token is None or token[0] != kind:
            return False
        return word is None or token[1].upper() == word

    def take(self, missing: str = "it ends too early.") -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise self.fail(missing)
        self.i += 1
        return token

    def identifier(self) -> tuple[str, str]:
        kind, raw = self.take("an identifier is missing.")
        if kind in ("str", "bt"):  # a quoted bare attribute, e.g. "run name"
            return "attribute", self.attribute(_unquote(raw))
        if kind != "word":
            raise self.fail(f"expected an identifier, got {raw!r}.")
        if not self.next_is("dot"):
            return "attribute", self.attribute(raw)
        entity = PREFIXES.get(raw.lower())
        if entity is None or entity not in self.grammar.prefixes:
            allowed = ", ".join(
                sorted(f"{p}s.<key>" for p in self.grammar.prefixes - {"attribute"})
            )
            raise self.fail(
                f"Unknown identifier type {raw!r}; use attributes.<name>"
                + (f" or {allowed}." if allowed else ".")
            )
        self.i += 1
        key_kind, key = self.take(f"{raw}. needs a key after the dot.")
        key = _unquote(key) if key_kind in ("str", "bt") else key
        # An unquoted key may itself hold dots (tags.mlflow.note): join the parts.
        while key_kind == "word" and self.next_is("dot"):
            self.i += 1
            key += "." + self.take(f"{raw}. needs a key after the dot.")[1]
        if not key:
            raise self.fail("empty key.")
        return entity, self.attribute(key) if entity == "attribute" else key

    def attribute(self, name: str) -> str:
        found = self.grammar.attributes.get(name) or self.grammar.attributes.get(name.lower())
        if found is None:
            known = ", ".join(sorted(set(self.grammar.attributes)))
            raise self.fail(f"Unknown {self.grammar.what} attribute {name!r}; known: {known}.")
        return found

    def value(self, after: str) -> Any:
        kind, raw = self.take(f"a value is missing after {after}.")
        if kind == "num":
            return float(raw)
        if kind == "str":
            return _unquote(raw)
        raise self.fail(f"{raw!r} is not a value; quote strings ('...').")

    def items(self) -> tuple[Any, ...]:
        if not self.next_is("lp"):
            raise self.fail("IN needs a list like ('a', 'b').")
        self.i += 1
        values: list[Any] = []
        while True:
            kind, raw = self.take("the IN list is not closed.")
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

    def clause(self) -> Clause:
        entity, key = self.identifier()
        kind, raw = self.take(f"a comparison is missing after {key!r}.")
        word = raw.upper()
        if kind == "op":
            op = "!=" if raw == "<>" else raw
            return self.checked(Clause(entity, key, op, self.value(op)))
        if kind == "word" and word in ("LIKE", "ILIKE"):
            return self.checked(Clause(entity, key, word, self.value(word)))
        if kind == "word" and word == "IS":
            negate = self.next_is("word", "NOT")
            if negate:
                self.i += 1
            if self.take("expected IS NULL or IS NOT NULL.")[1].upper() != "NULL":
                raise self.fail("expected IS NULL or IS NOT NULL.")
            if entity == "attribute":
                raise self.fail("IS NULL works on params, tags and metrics, not attributes.")
            return Clause(entity, key, "IS NOT NULL" if negate else "IS NULL")
        if kind == "word" and word in ("IN", "NOT"):
            if word == "NOT" and self.take("expected NOT IN.")[1].upper() != "IN":
                raise self.fail("expected NOT IN.")
            return self.checked(
                Clause(entity, key, "IN" if word == "IN" else "NOT IN", self.items())
            )
        raise self.fail(f"expected a comparator, got {raw!r}.")

    def checked(self, c: Clause) -> Clause:
        """Types and comparators that fit the field; numbers and known values normalised."""
        g = self.grammar
        if c.op in ("IN", "NOT IN"):
            allowed = g.in_attributes
            if c.entity == "attribute":
                refused = allowed is not None and c.key not in allowed
            else:
                refused = c.entity not in g.in_prefixes
            if refused:
                names = sorted(allowed) if allowed is not None else ["attributes"]
                names += [f"{p}s" for p in sorted(g.in_prefixes)]
                raise self.fail(f"IN works on {', '.join(names)}.")
        numeric = c.entity == "metric" or (c.entity == "attribute" and c.key in g.numeric)
        values = c.value if isinstance(c.value, tuple) else (c.value,)
        if numeric:
            if c.op in ("LIKE", "ILIKE"):
                raise self.fail(f"{c.op} needs a string field, not {c.entity} {c.key!r}.")
            if any(not isinstance(v, float) for v in values):
                raise self.fail(f"{c.entity} {c.key!r} is compared with a number, got {c.value!r}.")
            if g.integers:
                ints = tuple(int(v) for v in values)
                return Clause(
                    c.entity, c.key, c.op, ints if isinstance(c.value, tuple) else ints[0]
                )
            return c
        if c.op in (">", ">=", "<", "<="):
            raise self.fail(f"{c.op} needs a number field; {c.entity} {c.key!r} holds strings.")
        if any(not isinstance(v, str) for v in values):
            raise self.fail(f"{c.entity} {c.key!r} is compared with a quoted string.")
        mapping = g.values.get(c.key) if c.entity == "attribute" else None
        if mapping:
            mapped = tuple(mapping.get(v.upper(), v) for v in values)
            return Clause(
                c.entity, c.key, c.op, mapped if isinstance(c.value, tuple) else mapped[0]
            )
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


def _with_values(c: Clause, values: tuple[Any, ...]) -> Clause:
    """The clause with its value (or IN list) replaced, keeping its shape."""
    return Clause(c.entity, c.key, c.op, values if isinstance(c.value, tuple) else values[0])


def parse_filter(text: str | None, grammar: Grammar = RUNS) -> list[Clause]:
    if text is None or not text.strip():
        return []
    return _Parser(text, grammar).parse()


def parse_order_by(items: Sequence[str] | str | None, grammar: Grammar = RUNS) -> list[OrderBy]:
    """``["metrics.acc DESC", "params.lr"]`` -> order terms (ascending unless DESC)."""
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    out: list[OrderBy] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise InvalidInput(f"Invalid order_by {item!r}: empty.")
        text = item.strip()
        ascending = True
        m = re.search(r"\s+(ASC|DESC)$", text, re.IGNORECASE)
        if m:
            ascending = m.group(1).upper() == "ASC"
            text = text[: m.start()].strip()
        parser = _Parser(text, grammar, "order_by")
        entity, key = parser.identifier()
        if parser.peek() is not None:
            raise InvalidInput(f"Invalid order_by {item!r}: use '<identifier> [ASC|DESC]'.")
        if any((o.entity, o.key) == (entity, key) for o in out):
            raise InvalidInput(f"order_by names {entity} {key!r} twice.")
        out.append(OrderBy(entity, key, ascending))
    return out
