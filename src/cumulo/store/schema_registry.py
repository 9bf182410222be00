"""Tables of the model registry, MLflow 3 logged models, and run-to-model lineage.

Registered models and logged models belong to a workspace (``workspace_id``).
Nothing here has a foreign key to ``runs`` or ``experiments``: a registered
version keeps its own copy of the files and outlives the run that produced it,
and deleting runs or experiments must not be blocked by lineage rows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
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

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("user", String(250), nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # The highest version number given out, deleted versions included: never given again.
    Column("last_version", Integer, nullable=False, default=0, server_default="0"),
    UniqueConstraint("workspace_id", "name"),
)

registered_model_tags = Table(
    "registered_model_tags",
    metadata,
    Column("model_id", Id, ForeignKey("registered_models.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

registered_model_aliases = Table(
    "registered_model_aliases",
    metadata,
    Column("model_id", Id, ForeignKey("registered_models.id"), primary_key=True),
    Column("alias", String(255), primary_key=True),
    Column("version", Integer, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model_id", Id, ForeignKey("registered_models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", Text, nullable=False, default=""),
    Column("run_id", String(32)),
    Column("logged_model_id", String(64)),
    # Where the version's own copy of the files lives in the artifact store.
    Column("storage_prefix", String(1024)),
    Column("status", String(32), nullable=False),
    Column("status_message", Text, nullable=False, default=""),
    Column("stage", String(32), nullable=False, default="None"),
    Column("description", Text, nullable=False, default=""),
    Column("framework", String(64)),
    Column("flavors", Text),  # JSON
    Column("signature", Text),  # JSON
    Column("user", String(250), nullable=False, default=""),
    Column("run_link", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("model_id", "version"),
    UniqueConstraint("storage_prefix"),
    Index(None, "run_id"),
    Index(None, "logged_model_id"),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("version_id", Id, ForeignKey("model_versions.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

# MLflow 3's LoggedModel: a model's files, logged from a run (or not), before registration.
logged_models = Table(
    "logged_models",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("workspace_id", Id, ForeignKey("workspaces.id"), nullable=False),
    Column("experiment_id", Id, nullable=False),
    Column("name", String(500), nullable=False),
    Column("model_type", String(250)),
    Column("source_run_id", String(32)),
    Column("status", String(32), nullable=False),
    Column("status_message", Text, nullable=False, default=""),
    Column("user", String(250), nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Index(None, "workspace_id", "experiment_id", "created_at"),
    Index(None, "source_run_id"),
)


def _logged_model_kv(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("model_id", String(64), ForeignKey("logged_models.id"), primary_key=True),
        Column("key", String(250), primary_key=True),
        Column("value", Text, nullable=False),
    )


logged_model_params = _logged_model_kv("logged_model_params")
logged_model_tags = _logged_model_kv("logged_model_tags")

logged_model_metrics = Table(
    "logged_model_metrics",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model_id", String(64), ForeignKey("logged_models.id"), nullable=False),
    Column("run_id", String(32)),
    Column("key", String(250), nullable=False),
    Column("value", Float(precision=53)),
    Column("is_nan", Boolean, nullable=False, default=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("dataset_name", String(500)),
    Column("dataset_digest", String(64)),
    Index(None, "model_id", "key"),
)

# Lineage of runs: logged models a run used ("input") or produced ("output").
run_model_links = Table(
    "run_model_links",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("model_id", String(64), primary_key=True),
    Column("direction", String(8), primary_key=True),
    Column("step", BigInteger, nullable=False, default=0),
    Index(None, "model_id"),
)

# Datasets a run read (MLflow's dataset inputs), with their context tags as JSON.
run_dataset_inputs = Table(
    "run_dataset_inputs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("name", String(500), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("source_type", String(64), nullable=False, default=""),
    Column("source", Text, nullable=False, default=""),
    Column("schema", Text, nullable=False, default=""),
    Column("profile", Text, nullable=False, default=""),
    Column("tags", Text, nullable=False, default="{}"),
    UniqueConstraint("run_id", "name", "digest"),
)
