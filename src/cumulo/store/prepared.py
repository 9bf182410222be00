"""Statements a request runs on every call, handed to the database driver directly.

SQLAlchemy runs even a cached statement through about 20 µs of its own work (the
execution context, events, result metadata, type processing), three times what
SQLite takes to answer a run's row. A ``Prepared`` statement is compiled once per
dialect and then given to the driver's cursor as it is. An INSERT or UPDATE sets
the columns its values name, as SQLAlchemy's execute does, and a column it is not
given gets its default (a constant; one computed at each call must be given).

An expanding ``IN`` list is written into the SQL with as many parameters as the
list has values: each list's length is rounded up to a power of two, the list
padded with its last value (``IN`` and ``NOT IN`` mean the same with it twice), so
a statement has a few forms, each compiled once, instead of one per length.

What that asks of a caller: bound values are plain Python values the driver takes
as they are (str, int, float, bytes, None; bool), and rows come back as the driver
gives them, plain tuples in the statement's column order, so a SQLite boolean
reads 0 or 1. A statement whose columns need type processing stays with SQLAlchemy.

Listeners of the engine's ``before_cursor_execute`` (tracing, statement counts) see
every statement as ever: while one is attached, the statement runs through
SQLAlchemy instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import ValuesBase

# Where a positional parameter's values come from: the value given by its name, the
# statement's own value, or the items of the list given by its name.
_GIVEN, _FIXED, _ITEMS = range(3)


class _Form(NamedTuple):
    """The statement as the driver takes it, for one length of each ``IN`` list."""

    sql: str
    # The positional parameters in order, as (name, source, the statement's own value or
    # the list's length in this form): the driver's values are read straight from the
    # values given. None: by name.
    slots: tuple[tuple[str, int, Any], ...] | None
    fixed: dict[str, Any]  # values the statement holds itself (the 1 of ``number + 1``)
    spread: dict[str, list[str]]  # an IN list's name -> the names of its values


class _Plan:
    """A statement compiled for one dialect, and its forms by the lengths of its lists."""

    __slots__ = ("compiled", "defaults", "forms", "lists", "required")

    def __init__(self, statement: Executable, dialect: Dialect, columns: list[str] | None):
        compiled = cast(ClauseElement, statement).compile(dialect=dialect, column_keys=columns)
        assert isinstance(compiled, SQLCompiler)
        if compiled.literal_execute_params:
            raise TypeError("A value written into the SQL at each call: run it through SQLAlchemy.")
        self.compiled = compiled
        binds = compiled.bind_names
        # (a list written in several places is one bind in each, all of one name)
        self.lists = tuple(dict.fromkeys(name for b, name in binds.items() if b.expanding))
        self.required = [name for b, name in binds.items() if b.required and not b.expanding]
        # The columns an INSERT or UPDATE is not given, with their defaults, as SQLAlchemy
        # fills them in at each execution.
        self.defaults: dict[str, Any] = {}
        for column in compiled.insert_prefetch:
            self.defaults[column.key] = _scalar(column.default, column.key)
        for column in compiled.update_prefetch:
            self.defaults[column.key] = _scalar(column.onupdate, column.key)
        self.forms: dict[tuple[int, ...], _Form] = {}

    def form(self, sizes: tuple[int, ...]) -> _Form:
        found = self.forms.get(sizes)
        if found is None:
            stand_ins: dict[str, Any] = dict.fromkeys(self.required)
            stand_ins.update((name, [None] * n) for name, n in zip(self.lists, sizes, strict=True))
            state = self.compiled.construct_expanded_state(stand_ins)
            fixed = {k: v for k, v in state.parameters.items() if k not in stand_ins}
            spread = {name: list(state.parameter_expansion.get(name, ())) for name in self.lists}
            for expanded in spread.values():
                for k in expanded:
                    fixed.pop(k, None)
            fixed.update(self.defaults)
            slots = None
            if self.compiled.positional:
                # A list's values stand together, named <list>_1 ... <list>_n, wherever
                # the list is written: one slot from its first name on.
                first = {ks[0]: name for name, ks in spread.items() if ks}
                items = {k for ks in spread.values() for k in ks}
                slots = tuple(
                    (first[k], _ITEMS, len(spread[first[k]]))
                    if k in first
                    else (k, _FIXED, fixed[k])
                    if k in fixed
                    else (k, _GIVEN, None)
                    for k in state.positiontup or ()
                    if k in first or k not in items
                )
            found = self.forms[sizes] = _Form(state.statement, slots, fixed, spread)
        return found


def _scalar(default: Any, column: str) -> Any:
    if default is None or not default.is_scalar:
        raise TypeError(f"Column {column!r} has a default computed at each call: give its value.")
    return default.arg


def _rounded(n: int) -> int:
    return 1 << (n - 1).bit_length() if n else 0


class Prepared:
    __slots__ = ("_plans", "_sets_columns", "statement")

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        # An INSERT or UPDATE sets the columns its values name, as SQLAlchemy's execute
        # does: one plan for each set of names.
        self._sets_columns = isinstance(statement, ValuesBase)
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}  # by dialect and names

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> None:
        if conn.dispatch.before_cursor_execute:
            conn.execute(self.statement, dict(params))
        else:
            self._cursor(conn, params).close()

    def execute_many(self, conn: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        if not params:
            return
        if conn.dispatch.before_cursor_execute:
            conn.execute(self.statement, [dict(p) for p in params])
            return
        if self._plan(conn.dialect, params[0]).lists:
            raise TypeError("Rows of one statement cannot have IN lists of other lengths.")
        args = [self._driver_args(conn.dialect, p) for p in params]
        self._on_driver(conn, args[0][0], [values for _, values in args], many=True).close()

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> Sequence[Any]:
        if conn.dispatch.before_cursor_execute:
            return conn.execute(self.statement, dict(params)).all()
        cursor = self._cursor(conn, params)
        try:
            return cursor.fetchall()  # type: ignore[no-any-return]
        finally:
            cursor.close()

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        if conn.dispatch.before_cursor_execute:
            return conn.execute(self.statement, dict(params)).first()
        cursor = self._cursor(conn, params)
        try:
            return cursor.fetchone()
        finally:
            cursor.close()

    def _driver_args(self, dialect: Dialect, params: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL for these values, and the values as the driver takes them."""
        plan = self._plan(dialect, params)
        if plan.lists:  # a list shorter than its form repeats its last item
            form = plan.form(tuple([_rounded(len(params[name])) for name in plan.lists]))
        else:
            form = plan.forms.get(()) or plan.form(())
        if form.slots is not None:
            args: list[Any] = []
            for name, source, value in form.slots:
                if source == _GIVEN:
                    args.append(params[name])
                elif source == _FIXED:
                    args.append(value)
                else:
                    given = params[name]
                    args.extend(given)
                    args.extend(given[-1:] * (value - len(given)))
            return form.sql, args
        values = {**form.fixed, **params}
        for name, spread in form.spread.items():
            given = list(params[name])
            given += given[-1:] * (len(spread) - len(given))
            values.update(zip(spread, given, strict=True))
        return form.sql, values

    def _plan(self, dialect: Dialect, params: Mapping[str, Any]) -> _Plan:
        names = tuple(params) if self._sets_columns else ()
        plan = self._plans.get((dialect.name, names))
        if plan is None:
            plan = _Plan(self.statement, dialect, list(names) if self._sets_columns else None)
            self._plans[dialect.name, names] = plan
        return plan

    def _cursor(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        return self._on_driver(conn, *self._driver_args(conn.dialect, params))

    @staticmethod
    def _on_driver(conn: Connection, sql: str, params: Any, many: bool = False) -> Any:
        dbapi = conn.dialect.loaded_dbapi
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
        except dbapi.Error as exc:  # raised as SQLAlchemy would raise it
            cursor.close()
            raise DBAPIError.instance(sql, params, exc, dbapi.Error) from exc
        return cursor
