"""Every table of the metadata store, for migrations and schema checks."""

from cumulo.store import (
    schema,
    schema_auth,
    schema_datasets,
    schema_deployments,
    schema_jobs,
    schema_pipelines,
    schema_registry,
    schema_sweeps,
)
from cumulo.store.schema import metadata

__all__ = [
    "metadata",
    "schema",
    "schema_auth",
    "schema_datasets",
    "schema_deployments",
    "schema_jobs",
    "schema_pipelines",
    "schema_registry",
    "schema_sweeps",
]
