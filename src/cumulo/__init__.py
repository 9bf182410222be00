"""Cumulo: a self-hosted machine learning workspace.

from cumulo import Workspace, Experiment, Run

The names below load on first use, so that a command or a server that needs
only part of Cumulo does not import the whole SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from cumulo.core.jobs import Resources
    from cumulo.core.status import RunStatus
    from cumulo.sdk.automl import AutoMLConfig
    from cumulo.sdk.compute import ComputeTarget, LocalPool, RayCluster, SshMachine
    from cumulo.sdk.datasets import (
        Dataset,
        DatasetConsumptionConfig,
        Datastore,
        FileDataset,
        TabularDataset,
    )
    from cumulo.sdk.endpoints import DeploymentConfig, Endpoint, InferenceConfig
    from cumulo.sdk.jobs import Environment, ScriptRunConfig
    from cumulo.sdk.models import Model
    from cumulo.sdk.pipelines import (
        OutputFolder,
        Pipeline,
        PipelineData,
        PipelineEndpoint,
        PipelineParameter,
        PipelineRun,
        PublishedPipeline,
        PythonScriptStep,
        Schedule,
        ScheduleRecurrence,
    )
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

_WHERE = {
    "AlreadyExists": "cumulo.core.errors",
    "ConfigError": "cumulo.core.errors",
    "Conflict": "cumulo.core.errors",
    "CumuloError": "cumulo.core.errors",
    "InsufficientStorage": "cumulo.core.errors",
    "InvalidInput": "cumulo.core.errors",
    "InvalidPath": "cumulo.core.errors",
    "InvalidState": "cumulo.core.errors",
    "NotFound": "cumulo.core.errors",
    "PermissionDenied": "cumulo.core.errors",
    "RunFailed": "cumulo.core.errors",
    "Unauthenticated": "cumulo.core.errors",
    "Unavailable": "cumulo.core.errors",
    "Resources": "cumulo.core.jobs",
    "RunStatus": "cumulo.core.status",
    "AutoMLConfig": "cumulo.sdk.automl",
    "ComputeTarget": "cumulo.sdk.compute",
    "LocalPool": "cumulo.sdk.compute",
    "RayCluster": "cumulo.sdk.compute",
    "SshMachine": "cumulo.sdk.compute",
    "Dataset": "cumulo.sdk.datasets",
    "DatasetConsumptionConfig": "cumulo.sdk.datasets",
    "Datastore": "cumulo.sdk.datasets",
    "FileDataset": "cumulo.sdk.datasets",
    "TabularDataset": "cumulo.sdk.datasets",
    "DeploymentConfig": "cumulo.sdk.endpoints",
    "Endpoint": "cumulo.sdk.endpoints",
    "InferenceConfig": "cumulo.sdk.endpoints",
    "Environment": "cumulo.sdk.jobs",
    "ScriptRunConfig": "cumulo.sdk.jobs",
    "Model": "cumulo.sdk.models",
    "OutputFolder": "cumulo.sdk.pipelines",
    "Pipeline": "cumulo.sdk.pipelines",
    "PipelineData": "cumulo.sdk.pipelines",
    "PipelineEndpoint": "cumulo.sdk.pipelines",
    "PipelineParameter": "cumulo.sdk.pipelines",
    "PipelineRun": "cumulo.sdk.pipelines",
    "PublishedPipeline": "cumulo.sdk.pipelines",
    "PythonScriptStep": "cumulo.sdk.pipelines",
    "Schedule": "cumulo.sdk.pipelines",
    "ScheduleRecurrence": "cumulo.sdk.pipelines",
    "OfflineRun": "cumulo.sdk.run",
    "BanditPolicy": "cumulo.sdk.sweeps",
    "BayesianParameterSampling": "cumulo.sdk.sweeps",
    "GridParameterSampling": "cumulo.sdk.sweeps",
    "HyperbandPolicy": "cumulo.sdk.sweeps",
    "HyperDriveConfig": "cumulo.sdk.sweeps",
    "MedianStoppingPolicy": "cumulo.sdk.sweeps",
    "PrimaryMetricGoal": "cumulo.sdk.sweeps",
    "RandomParameterSampling": "cumulo.sdk.sweeps",
    "TruncationSelectionPolicy": "cumulo.sdk.sweeps",
    "choice": "cumulo.sdk.sweeps",
    "lognormal": "cumulo.sdk.sweeps",
    "loguniform": "cumulo.sdk.sweeps",
    "normal": "cumulo.sdk.sweeps",
    "qlognormal": "cumulo.sdk.sweeps",
    "qloguniform": "cumulo.sdk.sweeps",
    "qnormal": "cumulo.sdk.sweeps",
    "quniform": "cumulo.sdk.sweeps",
    "randint": "cumulo.sdk.sweeps",
    "uniform": "cumulo.sdk.sweeps",
    "RunDetails": "cumulo.sdk.widgets",
    "Experiment": "cumulo.sdk.workspace",
    "Run": "cumulo.sdk.workspace",
    "SweepRun": "cumulo.sdk.workspace",
    "Workspace": "cumulo.sdk.workspace",
}

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "AutoMLConfig",
    "BanditPolicy",
    "BayesianParameterSampling",
    "ComputeTarget",
    "ConfigError",
    "Conflict",
    "CumuloError",
    "Dataset",
    "DatasetConsumptionConfig",
    "Datastore",
    "DeploymentConfig",
    "Endpoint",
    "Environment",
    "Experiment",
    "FileDataset",
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
    "OutputFolder",
    "PermissionDenied",
    "Pipeline",
    "PipelineData",
    "PipelineEndpoint",
    "PipelineParameter",
    "PipelineRun",
    "PrimaryMetricGoal",
    "PublishedPipeline",
    "PythonScriptStep",
    "RandomParameterSampling",
    "RayCluster",
    "Resources",
    "Run",
    "RunDetails",
    "RunFailed",
    "RunStatus",
    "Schedule",
    "ScheduleRecurrence",
    "ScriptRunConfig",
    "SshMachine",
    "SweepRun",
    "TabularDataset",
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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        from cumulo.sdk.v1 import missing_name

        v1_name = missing_name(name)  # `from cumulo import AmlCompute` says what to use
        if v1_name is not None:
            raise v1_name
        raise AttributeError(f"module 'cumulo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
