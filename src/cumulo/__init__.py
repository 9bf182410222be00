"""Cumulo: a self-hosted machine learning workspace.

from cumulo import Workspace, Experiment, Run
"""

from cumulo.core.errors import (
    AlreadyExists,
    ConfigError,
    Conflict,
    CumuloError,
    InsufficientStorage,
    InvalidInput,
    InvalidPath,
    InvalidState,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from cumulo.core.status import RunStatus
from cumulo.sdk.compute import ComputeTarget, LocalPool, RayCluster, SshMachine
from cumulo.sdk.endpoints import Endpoint
from cumulo.sdk.experiment import Experiment
from cumulo.sdk.jobs import Environment, RunFailed, ScriptRunConfig
from cumulo.sdk.models import DeploymentConfig, InferenceConfig, Model
from cumulo.sdk.run import OfflineRun, Run
from cumulo.sdk.workspace import Workspace

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "ComputeTarget",
    "ConfigError",
    "Conflict",
    "CumuloError",
    "DeploymentConfig",
    "Endpoint",
    "Environment",
    "Experiment",
    "InferenceConfig",
    "InsufficientStorage",
    "InvalidInput",
    "InvalidPath",
    "InvalidState",
    "LocalPool",
    "Model",
    "NotFound",
    "OfflineRun",
    "PermissionDenied",
    "RayCluster",
    "Run",
    "RunFailed",
    "RunStatus",
    "ScriptRunConfig",
    "SshMachine",
    "Unauthenticated",
    "Unavailable",
    "Workspace",
    "__version__",
]
