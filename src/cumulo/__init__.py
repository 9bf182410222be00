"""Cumulo: a self-hosted machine learning workspace.

from cumulo import Workspace, Experiment, Run
"""

from cumulo.core.errors import (
    AlreadyExists,
    ConfigError,
    Conflict,
    CumuloError,
    InvalidInput,
    InvalidPath,
    InvalidState,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from cumulo.core.status import RunStatus
from cumulo.sdk.experiment import Experiment
from cumulo.sdk.run import OfflineRun, Run
from cumulo.sdk.workspace import Workspace

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "ConfigError",
    "Conflict",
    "CumuloError",
    "Experiment",
    "InvalidInput",
    "InvalidPath",
    "InvalidState",
    "NotFound",
    "OfflineRun",
    "PermissionDenied",
    "Run",
    "RunStatus",
    "Unauthenticated",
    "Unavailable",
    "Workspace",
    "__version__",
]
