"""What ``import cumulo`` offers is a promise: changing it is a decision, not an accident."""

from __future__ import annotations

from importlib.resources import files

import cumulo

PUBLIC = {
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
}


def test_the_public_names_are_the_promised_ones() -> None:
    assert set(cumulo.__all__) == PUBLIC
    assert len(cumulo.__all__) == len(PUBLIC)  # no name listed twice
    for name in cumulo.__all__:
        assert getattr(cumulo, name) is not None


def test_every_public_error_is_a_cumulo_error() -> None:
    for name in cumulo.__all__:
        value = getattr(cumulo, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, cumulo.CumuloError), name


def test_the_package_says_it_is_typed() -> None:
    assert files("cumulo").joinpath("py.typed").is_file()
