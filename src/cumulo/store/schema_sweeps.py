"""Tables of sweeps: each sweep's spec and driver lease, and its claimed trials.

A trial number is claimed by inserting its row (the unique key lets one writer
win), so a sweep has each number once, whichever process drives it. Times are
milliseconds since the epoch.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from cumulo.store.schema import Id, metadata

# One row per sweep, keyed by its parent run. ``state`` is ``running`` while a
# driver has work to do, ``done`` once the parent run ended.
sweeps = Table(
    "sweeps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False, unique=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("experiment_id", Id, nullable=False),
    Column("spec", Text, nullable=False),
    Column("job_config", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "state", "lease_expires_at"),
)

# One row per claimed trial: the values its script gets (``params``), the
# sampler's own values and attributes, then its run once submitted and its
# result once it ended (``state``: claimed, submitted, done).
sweep_trials = Table(
    "sweep_trials",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("sweep_id", Id, ForeignKey("sweeps.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("run_id", String(32)),
    Column("params", Text, nullable=False),
    Column("internal", Text, nullable=False),
    Column("system_attrs", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("value", Float),
    # a multi-objective trial's values, one per objective (JSON); ``value`` is the first
    Column("objective_values", Text),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("sweep_id", "number"),
)
