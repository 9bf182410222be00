"""Tables of the metadata store (SQLAlchemy Core). Times are milliseconds since the epoch."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Integer primary keys that autoincrement on both SQLite and PostgreSQL.
Id = BigInteger().with_variant(Integer(), "sqlite")

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(500), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_activity", BigInteger, nullable=False),
    Column("archived", Boolean, nullable=False, default=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("is_default", Boolean, nullable=False, default=False),
    # The highest run number given out here: creators take the next one under this
    # row's lock, so concurrent creators queue instead of clashing on max(number) + 1.
    Column("last_run_number", Integer, nullable=False, server_default="0"),
    UniqueConstraint("workspace_id", "name"),
)

experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column("experiment_id", Id, ForeignKey("experiments.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("experiment_id", Id, ForeignKey("experiments.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("display_name", String(250), nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("started_at", BigInteger),
    Column("ended_at", BigInteger),
    Column("user", String(250), nullable=False, default=""),
    Column("parent_id", String(32)),
    Column("kind", String(32), nullable=False, default="interactive"),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("compute_target", String(250)),
    Column("error", Text),
    UniqueConstraint("experiment_id", "number"),
    Index(None, "experiment_id", "created_at"),
    Index(None, "workspace_id", "created_at"),
    Index(None, "parent_id"),
)

run_status_history = Table(
    "run_status_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("at", BigInteger, nullable=False),
)


def _key_value(name: str, value_type: Text | String) -> Table:
    return Table(
        name,
        metadata,
        Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
        Column("key", String(250), primary_key=True),
        Column("value", value_type, nullable=False),
    )


params = _key_value("params", Text())
tags = _key_value("tags", Text())
properties = _key_value("properties", Text())

# The hottest data: each row is a chunk of one series, as packed arrays
# (see store/metric_series.py), so a million points are a few hundred rows.
metric_chunks = Table(
    "metric_chunks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("key", String(250), nullable=False),
    Column("size", Integer, nullable=False),
    Column("min_step", BigInteger, nullable=False),
    Column("max_step", BigInteger, nullable=False),
    Column("step_data", LargeBinary, nullable=False),
    Column("time_data", LargeBinary, nullable=False),
    Column("value_data", LargeBinary, nullable=False),
    Index(None, "run_id", "key", "id"),
)

# One row per (run, key): what search, sorting and listings read.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float(precision=53)),
    Column("is_nan", Boolean, nullable=False, default=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index(None, "key", "value"),
)

# Lists, rows, tables and images: values that are not a single number.
run_records = Table(
    "run_records",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("value", Text, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Index(None, "run_id", "name"),
)

# Batch ids already ingested: a retried batch is recognised and not written twice.
ingested_batches = Table(
    "ingested_batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("run_id", String(32), nullable=False, index=True),
    Column("at", BigInteger, nullable=False),
)
