"""Engine set-up, migrations on open, and the one transaction helper."""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

from cumulo.core.errors import Conflict, InsufficientStorage, InvalidInput, Unavailable

MIGRATIONS = Path(__file__).parent / "migrations"
# The read transaction that reads join (``Database.reading``), with its database.
_READING: ContextVar[tuple[Database, Connection] | None] = ContextVar("reading", default=None)


def normalise_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class Database:
    """A SQLAlchemy engine tuned for the backend, migrated to head when opened.

    SQLite runs in WAL mode with a long busy timeout, and write transactions
    start with ``BEGIN IMMEDIATE`` so several processes queue for the write lock
    instead of failing with "database is locked".
    """

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.engine = self._create_engine()
        self._migrate()

    def _create_engine(self) -> Engine:
        if not self.is_sqlite:
            return create_engine(self.url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        path = self.url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            self.url,
            connect_args={"timeout": 60, "check_same_thread": False},
            poolclass=NullPool if path == ":memory:" else None,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA case_sensitive_like=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("cumulo_write", False)
            # Straight to the driver: a statement through SQLAlchemy costs ten times more,
            # and every request begins a transaction.
            conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                "BEGIN IMMEDIATE" if write else "BEGIN"
            )

        return engine

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Several processes may open a new database at once: migrate one at a time."""
        if self.is_sqlite:
            path = self.url.split("sqlite:///", 1)[-1]
            if not path or path == ":memory:":
                yield
                return
            with open(path + ".lock", "a+") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        else:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(7211)"))
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(7211)"))
                    conn.commit()

    def _migrate(self) -> None:
        if self._at_head():  # the usual start: no need to load alembic
            return
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(cfg).get_current_head()
        try:
            with self._migration_lock():
                with self.engine.connect() as conn:
                    if MigrationContext.configure(conn).get_current_revision() == head:
                        return
                with self.engine.begin() as conn:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise Unavailable(
                f"Cannot open the metadata database {self.safe_url}: {exc.orig}"
            ) from exc

    def _at_head(self) -> bool:
        """Whether the database's revision is the newest of the migrations, read without
        alembic: one query, and the revisions named in the migration files."""
        try:
            with self.engine.connect() as conn:
                current = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        except (OperationalError, DBAPIError):  # a new database: no table yet
            return False
        return [row[0] for row in current] == [migration_head()]

    def upsert_insert(self) -> Any:
        """The backend's own ``insert`` (it has ``on_conflict_do_…``): only the dialect in
        use is imported (PostgreSQL's is large)."""
        if self.is_sqlite:
            from sqlalchemy.dialects import sqlite

            return sqlite.insert
        from sqlalchemy.dialects import postgresql

        return postgresql.insert

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def transaction(self, write: bool = True, snapshot: bool = False) -> Iterator[Connection]:
        """Commit on success, roll back on error, turn database errors into domain errors.
        A read inside ``reading`` joins its transaction. ``snapshot``: every statement reads
        the state of the first (PostgreSQL's REPEATABLE READ; SQLite's transactions do).

        On SQLite a write transaction takes the write lock when it begins
        (``BEGIN IMMEDIATE``) and waits up to a minute for it, so concurrent
        writers queue instead of failing half-way with "database is locked".
        """
        shared = None if write else _READING.get()
        if shared is not None and shared[0] is self:
            yield shared[1]
            return
        conn = self.engine.connect().execution_options(cumulo_write=write)
        if snapshot and not self.is_sqlite:  # SQLite's transactions read one state already
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            with conn.begin():
                yield conn
        except IntegrityError as exc:
            raise Conflict(f"The change conflicts with existing data: {exc.orig}") from exc
        except OperationalError as exc:
            if _disk_full(exc):
                raise InsufficientStorage(
                    f"The metadata database's disk is full ({exc.orig}); nothing was stored. "
                    "Free space and retry."
                ) from exc
            raise Unavailable(f"The metadata database is unavailable: {exc.orig}") from exc
        except DBAPIError as exc:
            raise InvalidInput(f"The database rejected the request: {exc.orig}") from exc
        finally:
            conn.close()

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Every read transaction inside is this one: a request that reads through several
        store calls (a run, then its lineage) begins and commits once and sees one state.
        Writes inside open their own transactions as ever (and the reads do not see them)."""
        shared = _READING.get()
        if shared is not None and shared[0] is self:
            yield
            return
        with self.transaction(write=False, snapshot=True) as conn:
            token = _READING.set((self, conn))
            try:
                yield
            finally:
                _READING.reset(token)

    def dispose(self) -> None:
        self.engine.dispose()


def known_revisions() -> set[str]:
    """Every revision the migrations name: the store revisions this version reads."""
    return set(_revisions()[0])


def migration_head() -> str:
    """The revision no migration builds on: the head alembic would find (a chain)."""
    revisions, parents = _revisions()
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"The migrations have {len(heads)} heads: {sorted(heads)}.")
    return heads.pop()


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (None for a database with no migration applied)."""
    return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def _revisions() -> tuple[set[str], set[str]]:
    """The revisions the migration files name, and those they build on."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text()
        found = _REVISION.search(text)
        if found:
            revisions.add(found.group(1))
        parents.update(_DOWN_REVISION.findall(text))
    return revisions, parents


_REVISION = re.compile(r'^revision\s*=\s*"([^"]+)"', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision\s*=\s*"([^"]+)"', re.MULTILINE)


def _disk_full(exc: OperationalError) -> bool:
    """SQLite's SQLITE_FULL, PostgreSQL's disk_full (53100)."""
    text = str(exc.orig).lower()
    return "disk is full" in text or getattr(exc.orig, "sqlstate", None) == "53100"
