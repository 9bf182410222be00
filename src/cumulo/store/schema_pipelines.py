"""Tables of pipelines: runs and their steps, published pipelines and schedules.

A pipeline run's row holds its spec, parameter values and driver lease (as a
sweep's does); each step has a row from the start (``waiting``), moved on by
compare-and-set on its state. A completed step's row keeps its fingerprint and
the content hashes of its outputs: the reuse index. A schedule's firing is
claimed by inserting ``(schedule, tick)`` (the unique key lets one process win).
Times are milliseconds since the epoch.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from cumulo.store.schema import Id, metadata

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False, unique=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("experiment_id", Id, nullable=False),
    Column("spec", Text, nullable=False),
    Column("parameters", Text, nullable=False),
    Column("template", Text, nullable=False),
    Column("resume_of", String(32)),
    Column("state", String(16), nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "state", "lease_expires_at"),
)

pipeline_steps = Table(
    "pipeline_steps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline_run_id", Id, ForeignKey("pipeline_runs.id"), nullable=False),
    Column("workspace_id", Id, nullable=False),
    Column("experiment_id", Id, nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("state", String(16), nullable=False),
    Column("run_id", String(32)),
    Column("fingerprint", String(64)),
    Column("parts", Text),
    Column("outputs", Text),
    Column("reused_from", String(32)),
    Column("reason", Text, nullable=False),
    Column("started_at", BigInteger),
    Column("ended_at", BigInteger),
    UniqueConstraint("pipeline_run_id", "name"),
    Index(None, "workspace_id", "fingerprint"),
    Index(None, "workspace_id", "experiment_id", "name"),
)

published_pipelines = Table(
    "published_pipelines",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("version", String(50), nullable=False),
    Column("description", Text, nullable=False),
    Column("spec", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("workspace_id", "name", "version"),
)

# The default version of each published name (a ``PipelineEndpoint``).
pipeline_endpoints = Table(
    "pipeline_endpoints",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("default_pipeline_id", String(32), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("workspace_id", "name"),
)

pipeline_schedules = Table(
    "pipeline_schedules",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("pipeline_id", String(32), nullable=False),
    Column("experiment_name", String(250), nullable=False),
    Column("parameters", Text, nullable=False),
    Column("frequency", String(16)),
    Column("interval", Integer),
    Column("start_time", BigInteger),
    Column("cron", String(200)),
    Column("enabled", Boolean, nullable=False),
    Column("next_fire_at", BigInteger),
    Column("last_fired_at", BigInteger),
    Column("last_run_id", String(32)),
    Column("created_at", BigInteger, nullable=False),
    Column("on_dataset", String(250)),  # fires on this dataset's new versions instead
    Column("dataset_version", Integer),  # the newest version it has fired for (or seen)
    UniqueConstraint("workspace_id", "name"),
    Index(None, "enabled", "next_fire_at"),
)

# One row per fired tick: inserted first (the claim), its run recorded once submitted.
schedule_firings = Table(
    "schedule_firings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("schedule_id", Id, ForeignKey("pipeline_schedules.id"), nullable=False),
    Column("tick", BigInteger, nullable=False),
    Column("owner", String(64), nullable=False),
    Column("claimed_at", BigInteger, nullable=False),
    Column("run_id", String(32)),
    UniqueConstraint("schedule_id", "tick"),
)
