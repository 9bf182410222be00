"""Run numbers under concurrency: many creators in one experiment get 1..N, no gap, no failure."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server

from cumulo import Experiment, Workspace
from cumulo.core.errors import Conflict, CumuloError
from cumulo.sdk.http import HttpTransport
from cumulo.store.db import Database
from cumulo.store.metadata import MetadataStore

CREATORS = 16
RUNS_EACH = 25
API = "/api/2.0/mlflow"


def _all_at_once(create_one: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """CREATORS threads, each calling ``create_one`` RUNS_EACH times: results and failures."""

    def creator(index: int) -> tuple[list[Any], list[BaseException]]:
        made: list[Any] = []
        failed: list[BaseException] = []
        for _ in range(RUNS_EACH):
            try:
                made.append(create_one(index))
            except Exception as exc:  # every failure counts, whatever its kind
                failed.append(exc)
        return made, failed

    with ThreadPoolExecutor(CREATORS) as pool:
        outcomes = list(pool.map(creator, range(CREATORS)))
    return [r for made, _ in outcomes for r in made], [e for _, f in outcomes for e in f]


def _store(workspace: Workspace) -> MetadataStore:
    return workspace.transport.tracking.store  # type: ignore[attr-defined,no-any-return]


def test_concurrent_creators_in_one_experiment_get_numbers_one_to_n(
    workspace: Workspace,
) -> None:
    exp = Experiment(workspace, "crowded")
    store = _store(workspace)

    runs, failures = _all_at_once(lambda _i: store.create_run(workspace.name, exp.id))

    assert failures == []
    total = CREATORS * RUNS_EACH
    assert sorted(r.number for r in runs) == list(range(1, total + 1))


def test_numbers_keep_counting_after_the_latest_run_is_deleted(workspace: Workspace) -> None:
    exp = Experiment(workspace, "deleted-last")
    store = _store(workspace)
    store.create_run(workspace.name, exp.id)
    latest = store.create_run(workspace.name, exp.id)
    store.delete_run(workspace.name, latest.id)
    assert store.create_run(workspace.name, exp.id).number == 3


def test_a_run_id_taken_twice_is_a_conflict_not_a_retry(workspace: Workspace) -> None:
    exp = Experiment(workspace, "same-id")
    store = _store(workspace)
    run_id = uuid.uuid4().hex
    store.create_run(workspace.name, exp.id, run_id=run_id)
    with pytest.raises(Conflict, match="already exists"):
        store.create_run(workspace.name, exp.id, run_id=run_id)
    assert store.create_run(workspace.name, exp.id).number == 2


def test_a_counter_behind_the_runs_catches_up(workspace: Workspace) -> None:
    """Runs numbered without the counter (a server not yet upgraded) are skipped, not clashed."""
    exp = Experiment(workspace, "behind")
    store = _store(workspace)
    for _ in range(3):
        store.create_run(workspace.name, exp.id)
    with store.db.transaction() as conn:
        conn.execute(
            text("UPDATE experiments SET last_run_number = 1 WHERE id = :id"), {"id": exp.id}
        )
    assert store.create_run(workspace.name, exp.id).number == 4


# --------------------------------------------------------------- migration
def _database_before_counters(backend: str, request: pytest.FixtureRequest, tmp: Path) -> str:
    """A new, empty database's URL, migrated only up to the revision before run counters."""
    from alembic import command
    from alembic.config import Config

    from cumulo.store.db import MIGRATIONS, normalise_url

    url = f"sqlite:///{tmp / 'old.db'}"
    if backend == "postgres":
        server = request.getfixturevalue("postgres_url")
        name = f"before_counters_{uuid.uuid4().hex[:8]}"
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
        url = server.rsplit("/", 1)[0] + "/" + name
    engine = create_engine(normalise_url(url))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
    engine.dispose()
    return url


def test_the_migration_starts_each_counter_after_the_existing_runs(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from sqlalchemy import insert, select

    from cumulo.store import schema as t

    url = _database_before_counters(backend, request, tmp_path)
    engine = create_engine(url)
    with engine.begin() as conn:
        ws_id = conn.execute(
            insert(t.workspaces).values(name="old", created_at=0)
        ).inserted_primary_key[0]  # type: ignore[index]
        exp_ids = [
            conn.execute(
                insert(t.experiments).values(
                    workspace_id=ws_id, name=name, created_at=0, last_activity=0
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            for name in ("with-runs", "empty")
        ]
        for number in (1, 2, 7):
            conn.execute(
                insert(t.runs).values(
                    id=uuid.uuid4().hex,
                    workspace_id=ws_id,
                    experiment_id=exp_ids[0],
                    number=number,
                    display_name="r",
                    status="Completed",
                    created_at=0,
                )
            )
    engine.dispose()

    store = MetadataStore(Database(url))  # migrates to head
    with store.db.transaction(write=False) as conn:
        counters = conn.execute(
            select(t.experiments.c.last_run_number).order_by(t.experiments.c.id)
        ).scalars()
        assert list(counters) == [7, 0]
    assert store.create_run("old", exp_ids[0]).number == 8
    assert store.create_run("old", exp_ids[1]).number == 1
    store.db.dispose()


# ------------------------------------------------------------ over HTTP
@pytest.fixture
def two_servers(postgres_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two `cumulo server` processes over one PostgreSQL database."""
    procs, urls = [], []
    try:
        for name in ("a", "b"):
            port = free_port()
            procs.append(start_cumulo_server(tmp_path / name, port, "--database-url", postgres_url))
            urls.append(f"http://127.0.0.1:{port}")
        yield urls
    finally:
        for proc in procs:
            stop_cumulo_server(proc)


@pytest.mark.slow
@pytest.mark.postgres
def test_mlflow_create_run_through_two_servers_never_fails(two_servers: list[str]) -> None:
    name = f"ws-{uuid.uuid4().hex[:10]}"
    admin = HttpTransport(two_servers[0])
    admin.tracking.create_workspace(name)
    admin.close()
    bases = [f"{url}/ws/{name}{API}" for url in two_servers]
    created = httpx.post(f"{bases[0]}/experiments/create", json={"name": "crowded"})
    assert created.status_code == 200, created.text
    exp_id = created.json()["experiment_id"]
    clients = [httpx.Client(base_url=base, timeout=60) for base in bases]

    def create_one(index: int) -> str:
        answer = clients[index % 2].post("/runs/create", json={"experiment_id": exp_id})
        if answer.status_code != 200:
            raise CumuloError(f"{answer.status_code} {answer.text}")
        return str(answer.json()["run"]["info"]["run_id"])

    try:
        run_ids, failures = _all_at_once(create_one)
    finally:
        for client in clients:
            client.close()

    assert [str(f) for f in failures] == []
    total = CREATORS * RUNS_EACH
    assert len(set(run_ids)) == total
    runs = list(Experiment(Workspace.connect(two_servers[1], name), "crowded").get_runs())
    assert sorted(r.number for r in runs) == list(range(1, total + 1))


def test_mlflow_answers_a_lost_race_with_a_status_its_client_retries() -> None:
    from cumulo.core.errors import Unavailable
    from cumulo.server.mlflow.common import mlflow_error

    lost = mlflow_error(Unavailable("runs are being created at once"))
    assert lost.status_code == 503
    assert b"TEMPORARILY_UNAVAILABLE" in lost.body
    assert mlflow_error(Conflict("a run with this id already exists")).status_code == 400
