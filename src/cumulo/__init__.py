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
    RunFailed,
    Unauthenticated,
    Unavailable,
)
from cumulo.core.status import RunStatus
from cumulo.sdk.compute import ComputeTarget, LocalPool, RayCluster, SshMachine
from cumulo.sdk.endpoints import DeploymentConfig, Endpoint, InferenceConfig
from cumulo.sdk.jobs import Environment, ScriptRunConfig
from cumulo.sdk.models import Model
from cumulo.sdk.run import OfflineRun
from cumulo.sdk.sweeps import (
    BanditPolicy,
    BayesianParameterSampling,
    GridParameterSampling,
    HyperbandPolicy,
    HyperDriveConfig,
    MedianStoppingPolicy,
    PrimaryMetricGoal,
    RandomParameterSampling,
    TruncationSelectionPolicy,
    choice,
    lognormal,
    loguniform,
    normal,
    qlognormal,
    qloguniform,
    qnormal,
    quniform,
    randint,
    uniform,
)
from cumulo.sdk.widgets import RunDetails
from cumulo.sdk.workspace import Experiment, Run, SweepRun, Workspace

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "BanditPolicy",
    "BayesianParameterSampling",
    "ComputeTarget",
    "ConfigError",
    "Conflict",
    "CumuloError",
    "DeploymentConfig",
    "Endpoint",
    "Environment",
    "Experiment",
    "GridParameterSampling",
    "HyperDriveConfig",
    "HyperbandPolicy",
    "InferenceConfig",
    "InsufficientStorage",
    "InvalidInput",
    "InvalidPath",
    "InvalidState",
    "LocalPool",
    "MedianStoppingPolicy",
    "Model",
    "NotFound",
    "OfflineRun",
    "PermissionDenied",
    "PrimaryMetricGoal",
    "RandomParameterSampling",
    "RayCluster",
    "Run",
    "RunDetails",
    "RunFailed",
    "RunStatus",
    "ScriptRunConfig",
    "SshMachine",
    "SweepRun",
    "TruncationSelectionPolicy",
    "Unauthenticated",
    "Unavailable",
    "Workspace",
    "__version__",
    "choice",
    "lognormal",
    "loguniform",
    "normal",
    "qlognormal",
    "qloguniform",
    "qnormal",
    "quniform",
    "randint",
    "uniform",
]
