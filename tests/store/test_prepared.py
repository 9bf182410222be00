"""Prepared statements on the driver answer as SQLAlchemy does, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from cumulo.store.db import normalise_url
from cumulo.store.prepared import Prepared


@pytest.fixture
def scratch(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Engine, Table]]:
    if backend == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'scratch.db'}")
    else:
        engine = create_engine(normalise_url(request.getfixturevalue("postgres_url")))
    table = Table(
        f"scratch_{uuid.uuid4().hex[:8]}",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("name", String(20), nullable=False),
        Column("done", Boolean, nullable=False),
        Column("count", Integer, nullable=False),
        Column("note", String(20), nullable=False, default="-"),
    )
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(table),
            [{"id": i, "name": f"n{i % 7}", "done": i % 3 == 0, "count": 0} for i in range(40)],
        )
    yield engine, table
    table.drop(engine)
    engine.dispose()


def test_in_lists_of_every_length_find_what_sqlalchemy_finds(
    scratch: tuple[Engine, Table],
) -> None:
    engine, table = scratch
    statement = (
        select(table.c.id, table.c.name)
        .where(
            table.c.id.in_(bindparam("ids", expanding=True)),
            table.c.name.not_in(bindparam("names", expanding=True)),
        )
        .order_by(table.c.id)
    )
    prepared = Prepared(statement)
    with engine.connect() as conn:
        for n in (0, 1, 2, 3, 5, 17, 33):
            for names in ([], ["n1"], ["n1", "n2", "n3"]):
                params = {"ids": list(range(0, 2 * n, 2)), "names": names}
                expected = [tuple(r) for r in conn.execute(statement, params)]
                assert [tuple(r) for r in prepared.rows(conn, params)] == expected
        # A form for each rounded length (0, 1, 2, 4, 8, 32, 64), not for each length.
        plan = prepared._plans[engine.dialect.name, ()]  # a SELECT: one plan
        assert {ids for ids, _names in plan.forms} == {0, 1, 2, 4, 8, 32, 64}


def test_values_the_statement_holds_and_many_rows_at_once(scratch: tuple[Engine, Table]) -> None:
    engine, table = scratch
    bump = Prepared(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(count=table.c.count + 1)
        .returning(table.c.count, table.c.done)
    )
    add = Prepared(insert(table))
    first_two = Prepared(
        select(table.c.id).where(table.c.done == bindparam("done")).order_by(table.c.id).limit(2)
    )
    with engine.begin() as conn:
        assert tuple(bump.first(conn, {"b_id": 3})) == (1, True)  # SQLite's 1 equals True
        assert bump.first(conn, {"b_id": 3})[0] == 2
        add.execute_many(
            conn,
            [{"id": 100 + i, "name": "new", "done": False, "count": 7} for i in range(3)],
        )
        add.execute_many(conn, [])
        assert [tuple(r) for r in first_two.rows(conn, {"done": True})] == [(0,), (3,)]
        found = conn.execute(select(table.c.count).where(table.c.name == "new")).scalars()
        assert list(found) == [7, 7, 7]
        # The columns given set, the one left out gets its default, as through SQLAlchemy.
        add.execute(conn, {"id": 200, "name": "noted", "done": True, "count": 0, "note": "x"})
        add.execute(conn, {"id": 201, "name": "plain", "done": True, "count": 0})
        notes = conn.execute(select(table.c.note).where(table.c.id >= 200).order_by(table.c.id))
        assert list(notes.scalars()) == ["x", "-"]


def test_a_driver_error_is_raised_as_sqlalchemys_and_a_listener_sees_every_statement(
    scratch: tuple[Engine, Table],
) -> None:
    engine, table = scratch
    add = Prepared(insert(table))
    by_id = Prepared(select(table.c.name).where(table.c.id == bindparam("id")))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        add.execute(conn, {"id": 1, "name": "again", "done": False, "count": 0})

    seen: list[str] = []

    def listen(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        with engine.connect() as conn:
            assert tuple(by_id.first(conn, {"id": 5})) == ("n5",)
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert any(table.name in s for s in seen)
    with engine.connect() as conn:  # and without a listener, the driver's own row
        assert by_id.first(conn, {"id": 5}) == ("n5",)
