"""Statements a request runs on every call, handed to the database driver directly.

SQLAlchemy runs even a cached statement through about 20 µs of its own work (the
execution context, events, result metadata, type processing), three times what
SQLite takes to answer a run's row. A ``Prepared`` statement is compiled once per
dialect and then given to the driver's cursor as it is.

What that asks of a caller: bound values are plain Python values the driver takes
as they are (str, int, float, bytes, None; bool), and rows come back as the driver
gives them, plain tuples in the statement's column order, so a SQLite boolean
reads 0 or 1. A statement with an expanding ``IN`` list, or whose columns need
type processing, stays with SQLAlchemy.

Listeners of the engine's ``before_cursor_execute`` (tracing, statement counts) see
every statement as ever: while one is attached, the statement runs through
SQLAlchemy instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler


class Prepared:
    __slots__ = ("_columns", "_compiled", "statement")

    def __init__(self, statement: Executable, columns: Sequence[str] | None = None) -> None:
        """``columns``: an INSERT's columns, the keys every call gives values for (a
        column left out gets no default: give it)."""
        self.statement = statement
        self._columns = list(columns) if columns is not None else None
        # dialect name -> (SQL, the names of its positional parameters or None (by name), the
        # values the statement holds itself or None)
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any] | None]] = {}

    def _compile(
        self, dialect: Dialect
    ) -> tuple[str, tuple[str, ...] | None, dict[str, Any] | None]:
        compiled = cast(ClauseElement, self.statement).compile(
            dialect=dialect, column_keys=self._columns
        )
        assert isinstance(compiled, SQLCompiler)
        if any(b.expanding for b in compiled.binds.values()):
            raise TypeError("An expanding IN list is written per call: run it through SQLAlchemy.")
        names = tuple(compiled.positiontup or ()) if compiled.positional else None
        # Values the statement itself holds (the 1 of ``number + 1``)
        fixed = {
            name: b.effective_value for b, name in compiled.bind_names.items() if not b.required
        }
        found = self._compiled[dialect.name] = (compiled.string, names, fixed or None)
        return found

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> None:
        if conn.dispatch.before_cursor_execute:
            conn.execute(self.statement, dict(params))
        else:
            self._cursor(conn, params).close()

    def execute_many(self, conn: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        if conn.dispatch.before_cursor_execute:
            conn.execute(self.statement, [dict(p) for p in params])
            return
        sql, names, fixed = self._sql(conn.dialect)
        if fixed:
            params = [{**fixed, **p} for p in params]
        rows = params if names is None else [[p[n] for n in names] for p in params]
        self._on_driver(conn, sql, rows, many=True).close()

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

    def _sql(self, dialect: Dialect) -> tuple[str, tuple[str, ...] | None, dict[str, Any] | None]:
        return self._compiled.get(dialect.name) or self._compile(dialect)

    def _cursor(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        sql, names, fixed = self._sql(conn.dialect)
        if fixed:
            params = {**fixed, **params}
        return self._on_driver(conn, sql, params if names is None else [params[n] for n in names])

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


def driver_rows(
    conn: Connection, statement: Executable, params: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    """The rows of a statement SQLAlchemy runs (it has an expanding ``IN`` list) as the
    driver gives them, for a caller that reads them as ``Prepared.rows`` returns them:
    SQLAlchemy's row objects add about half the query's own time for a page of runs."""
    with conn.execute(statement, params) as result:
        return result.cursor.fetchall()
