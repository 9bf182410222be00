"""How many SQL statements the hot reads and writes take, and that the lean paths
answer exactly what a full read does."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, event

from cumulo import Experiment, Workspace
from cumulo.core.errors import Conflict, InvalidState, NotFound
from cumulo.core.search import parse_filter, parse_order_by
from cumulo.core.status import RunStatus
from cumulo.store.db import migration_head
from cumulo.store.logged_models import LoggedModelStore
from cumulo.store.metadata import MetadataStore
from cumulo.store.run_query import RunSearch, search_statement


class Statements:
    """The statements an engine runs while counting (BEGIN and COMMIT left out). While it
    listens, the store's prepared statements run through SQLAlchemy (store/prepared.py):
    the same statements, so it counts them all."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, _conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if statement.split()[0].upper() not in ("BEGIN", "COMMIT"):
            self.seen.append(statement)


@pytest.fixture
def counted(workspace: Workspace) -> Iterator[tuple[MetadataStore, Statements]]:
    store: MetadataStore = workspace.transport.tracking.store  # type: ignore[attr-defined]
    statements = Statements()
    event.listen(store.db.engine, "before_cursor_execute", statements)
    yield store, statements
    event.remove(store.db.engine, "before_cursor_execute", statements)


def test_a_run_reads_in_two_statements_and_creating_one_reads_nothing_back(
    workspace: Workspace, counted: tuple[MetadataStore, Statements]
) -> None:
    store, statements = counted
    exp = Experiment(workspace, "queries")
    statements.seen.clear()
    created = store.create_run(workspace.name, exp.id, tags={"team": "a"}, user="ana")
    assert not any(s.lstrip().upper().startswith("SELECT RUNS.") for s in statements.seen)
    assert created == store.get_run(workspace.name, created.id)  # built, not read back

    store.log_batch(
        workspace.name,
        created.id,
        metrics=[("loss", 0.5, 1, 1000), ("acc", float("nan"), 1, 1000)],
        params={"lr": "0.1"},
        tags={"team": "b"},
    )
    store.add_properties(workspace.name, created.id, {"source": "test"})
    statements.seen.clear()
    run = store.get_run(workspace.name, created.id)
    assert len(statements.seen) == 2
    assert (run.params, run.tags, run.properties) == (
        {"lr": "0.1"},
        {"team": "b"},
        {"source": "test"},
    )
    assert run.metrics["loss"].value == 0.5 and run.metrics["loss"].step == 1
    assert run.metrics["acc"].value != run.metrics["acc"].value  # NaN kept
    assert run.experiment_name == "queries" and run.workspace == workspace.name
    assert [c.status for c in run.status_history] == ["Running"]


def test_a_page_of_runs_reads_in_two_statements(
    workspace: Workspace, counted: tuple[MetadataStore, Statements]
) -> None:
    store, statements = counted
    exp = Experiment(workspace, "page")
    ids = []
    for i in range(3):
        run = store.create_run(workspace.name, exp.id)
        store.log_batch(
            workspace.name, run.id, metrics=[("m", float(i), 0, 1)], params={"i": str(i)}
        )
        ids.append(run.id)
    statements.seen.clear()
    page = store.search_runs(
        workspace.name, [exp.id], filter="metrics.m >= 1", order_by="metrics.m DESC"
    )
    assert len(statements.seen) == 2
    assert [r.id for r in page.runs] == [ids[2], ids[1]]
    assert [r.params for r in page.runs] == [{"i": "2"}, {"i": "1"}]


def test_the_migration_head_read_from_the_files_is_alembics() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from cumulo.store.db import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert migration_head() == ScriptDirectory.from_config(cfg).get_current_head()


def test_reads_inside_reading_share_one_transaction_and_one_state(
    workspace: Workspace, counted: tuple[MetadataStore, Statements]
) -> None:
    store, _statements = counted
    db = store.db
    run = store.create_run(workspace.name, Experiment(workspace, "one state").id)
    begins: list[object] = []

    def note(conn: object) -> None:
        begins.append(conn)

    event.listen(db.engine, "begin", note)
    try:
        with db.reading():
            before = store.get_run(workspace.name, run.id)
            store.set_tags(workspace.name, run.id, {"later": "yes"})  # its own transaction
            again = store.get_run(workspace.name, run.id)
        after = store.get_run(workspace.name, run.id)
    finally:
        event.remove(db.engine, "begin", note)
    assert "later" not in before.tags and "later" not in again.tags  # one state throughout
    assert after.tags["later"] == "yes"
    assert len(begins) == 3  # the shared read, the write, the read after


def test_searches_of_one_shape_reuse_one_statement_and_each_finds_its_own_runs(
    workspace: Workspace,
) -> None:
    store: MetadataStore = workspace.transport.tracking.store  # type: ignore[attr-defined]
    exp = Experiment(workspace, "shapes")
    ids = []
    for i in range(4):
        run = store.create_run(workspace.name, exp.id, tags={"team": "ab"[i % 2]})
        store.log_batch(
            workspace.name,
            run.id,
            metrics=[("acc", i / 4, 0, 1), ("loss", 1 - i / 4, 0, 1)],
            params={"model": ["rf", "svm"][i // 2], "depth": str(i)},
        )
        ids.append(run.id)

    def found(filter: str, order_by: str) -> list[str]:
        return [
            r.id
            for r in store.search_runs(
                workspace.name, [exp.id], filter=filter, order_by=order_by
            ).runs
        ]

    def statement(filter: str, order_by: str) -> object:
        search = RunSearch(
            1, [exp.id], clauses=parse_filter(filter), orders=parse_order_by(order_by)
        )
        return search_statement(search)[0]

    by_model = ("metrics.acc > 0.1 AND params.model = 'rf'", "metrics.acc DESC")
    by_depth = ("metrics.loss > 0.3 AND params.depth = '2'", "metrics.loss DESC")
    assert statement(*by_model) is statement(*by_depth)  # keys and values are parameters
    assert found(*by_model) == [ids[1]]
    assert found(*by_depth) == [ids[2]]
    assert found(
        "params.depth IN ('0', '3') AND attributes.status = 'RUNNING'", "params.depth DESC"
    ) == [ids[3], ids[0]]
    assert found(
        "params.depth IN ('1', '2', '3') AND attributes.status = 'RUNNING'", "params.depth DESC"
    ) == [ids[3], ids[2], ids[1]]
    assert found("tags.team LIKE 'b%'", "metrics.acc") == [ids[1], ids[3]]
    tagged = store.search_runs(workspace.name, [exp.id], tags={"team": "b"}, order_by="metrics.acc")
    assert [r.id for r in tagged.runs] == [ids[1], ids[3]]
    paged = store.search_runs(workspace.name, [exp.id], order_by="metrics.acc", max_results=3)
    rest = store.search_runs(
        workspace.name, [exp.id], order_by="metrics.acc", page_token=paged.next_page_token
    )
    assert [r.id for r in paged.runs + rest.runs] == ids


def test_creating_a_run_checks_and_numbers_its_experiment_in_one_statement(
    workspace: Workspace, counted: tuple[MetadataStore, Statements]
) -> None:
    store, statements = counted
    exp = Experiment(workspace, "numbered")
    other = store.create_workspace(f"{workspace.name}-other")
    statements.seen.clear()
    first = store.create_run(workspace.name, exp.id)
    assert len(statements.seen) == 3  # the numbering update, the run and its status
    assert not any(s.lstrip().upper().startswith("SELECT") for s in statements.seen)

    with pytest.raises(NotFound, match=f"Experiment {exp.id} does not exist"):
        store.create_run(other.name, exp.id)  # another workspace's experiment
    store.update_experiment(workspace.name, exp.id, deleted=True)
    with pytest.raises(InvalidState, match="'numbered' is deleted"):
        store.create_run(workspace.name, exp.id)
    store.update_experiment(workspace.name, exp.id, deleted=False)
    second = store.create_run(workspace.name, exp.id)
    assert (first.number, second.number) == (1, 2)  # the refused creates counted nothing
    assert second.experiment_name == "numbered"


def test_a_status_change_reads_the_run_once_and_a_cancel_leaves_an_ending_run_as_it_is(
    workspace: Workspace, counted: tuple[MetadataStore, Statements]
) -> None:
    store, statements = counted
    tracking = workspace.transport.tracking  # type: ignore[attr-defined]
    exp = Experiment(workspace, "statuses")
    run = store.create_run(workspace.name, exp.id)
    statements.seen.clear()
    ended = tracking.set_run_status(workspace.name, run.id, "Completed")
    reads = [s for s in statements.seen if s.lstrip().upper().startswith("SELECT RUNS.")]
    assert len(reads) == 1  # the changed row comes back from the update itself
    assert ended.status == "Completed" and ended.ended_at is not None
    assert [c.status for c in ended.status_history] == ["Running", "Completed"]

    assert tracking.request_cancel(workspace.name, run.id).status == "Completed"
    finalizing = store.create_run(workspace.name, exp.id)
    store.set_run_status(workspace.name, finalizing.id, RunStatus.FINALIZING)
    assert tracking.request_cancel(workspace.name, finalizing.id).status == "Finalizing"
    active = store.create_run(workspace.name, exp.id)
    assert tracking.request_cancel(workspace.name, active.id).status == "CancelRequested"
    assert [c.status for c in store.get_run(workspace.name, run.id).status_history] == [
        "Running",
        "Completed",
    ]


def test_a_runs_hot_statements_go_to_the_driver_and_answer_as_through_sqlalchemy(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: MetadataStore = workspace.transport.tracking.store  # type: ignore[attr-defined]
    exp = Experiment(workspace, "driver")
    parent = store.create_run(workspace.name, exp.id)
    run = store.create_run(
        workspace.name, exp.id, parent_id=parent.id, tags={"team": "a", "size": "s"}, user="ana"
    )
    store.log_batch(
        workspace.name,
        run.id,
        metrics=[("loss", 0.5, 1, 1000), ("acc", float("nan"), 2, 1001)],
        params={"lr": "0.1"},
    )
    store.set_run_status(workspace.name, run.id, RunStatus.COMPLETED)

    through_sqlalchemy: list[object] = []
    real_execute = Connection.execute

    def execute(self: Connection, statement: object, *args: object, **kw: object) -> object:
        through_sqlalchemy.append(statement)
        return real_execute(self, statement, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Connection, "execute", execute)
    direct = store.get_run(workspace.name, run.id)
    assert through_sqlalchemy == []  # the run's row, details and lineage: the driver's
    monkeypatch.undo()

    statements = Statements()  # a listener: the same read through SQLAlchemy
    event.listen(store.db.engine, "before_cursor_execute", statements)
    try:
        listened = store.get_run(workspace.name, run.id)
    finally:
        event.remove(store.db.engine, "before_cursor_execute", statements)
    assert len(statements.seen) == 2
    assert direct == listened
    assert direct.deleted is False and direct.parent_id == parent.id
    assert direct.tags == {"team": "a", "size": "s"} and direct.params == {"lr": "0.1"}
    assert direct.metrics["acc"].value != direct.metrics["acc"].value  # NaN kept
    assert [c.status for c in direct.status_history] == ["Running", "Completed"]

    store.update_run(workspace.name, run.id, deleted=True)
    assert store.get_run(workspace.name, run.id).deleted is True  # SQLite's 1, read as True
    with pytest.raises(Conflict, match=f"A run with id '{run.id}' already exists"):
        store.create_run(workspace.name, exp.id, run_id=run.id)  # the driver's error, mapped
    with pytest.raises(NotFound, match="does not exist in this workspace"):
        store.get_run(workspace.name, "f" * 32)


def test_the_lineage_of_a_page_of_runs_reads_those_runs_not_the_whole_workspace(
    workspace: Workspace,
) -> None:
    store: MetadataStore = workspace.transport.tracking.store  # type: ignore[attr-defined]
    if not store.db.is_sqlite:
        pytest.skip("counts SQLite's virtual machine steps")
    lineage = LoggedModelStore(store.db)
    exp = Experiment(workspace, "lineage")
    page = [store.create_run(workspace.name, exp.id).id for _ in range(8)]
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0  # go on

    def counted(dbapi_conn: sqlite3.Connection, _record: object, _proxy: object) -> None:
        dbapi_conn.set_progress_handler(count, 10)

    def steps_of_the_pages_lineage() -> int:
        steps[0] = 0
        event.listen(store.db.engine, "checkout", counted)
        try:
            assert all(not item.datasets for item in lineage.lineage(workspace.name, page).values())
        finally:
            event.remove(store.db.engine, "checkout", counted)
        return steps[0]

    few = steps_of_the_pages_lineage()
    for _ in range(300):
        store.create_run(workspace.name, exp.id)
    many = steps_of_the_pages_lineage()
    assert few > 0
    assert many < few * 1.5  # not one step more for each run of the workspace
