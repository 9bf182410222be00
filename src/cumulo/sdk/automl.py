"""Automated model search: ``AutoMLConfig`` over scikit-learn estimators, as a sweep.

Submitting an ``AutoMLConfig`` submits a sweep (a ``SweepRun``) whose trials
each train one estimator family with hyperparameters drawn by Optuna's TPE
(``BayesianParameterSampling``): a linear model, a random forest, gradient
boosting or k-nearest neighbours. Each trial is a child run that scores its
pipeline by ``n_cross_validations``-fold cross-validation (the primary metric
is the mean score), logs the spread and the fit time, tags its estimator,
hyperparameters and featurization (numeric columns standardized, the others
one-hot encoded), and saves the pipeline fitted on all the data as an MLflow
model with its signature in ``outputs/model``. The sweep's leaderboard is the
AutoML leaderboard; its best trial's model is ready for ``register_model``.

Example::

    from sklearn.datasets import load_iris
    from cumulo import AutoMLConfig, Experiment

    data = load_iris(as_frame=True).frame
    config = AutoMLConfig(task="classification", training_data=data,
                          label_column_name="target", max_trials=8)
    search = Experiment(ws, "automl").submit(config)
    search.wait_for_completion()
    best = search.get_best_run_by_primary_metric()
    best.register_model("iris", model_path="outputs/model")
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from cumulo.core.errors import InvalidInput
from cumulo.core.sweeps import ParameterExpression, PrimaryMetricGoal, choice, loguniform
from cumulo.sdk import v1
from cumulo.sdk.jobs import ScriptRunConfig
from cumulo.sdk.sweeps import BayesianParameterSampling, HyperDriveConfig

__all__ = ["AutoMLConfig"]

TASKS = ("classification", "regression")
TRAINER = Path(__file__).with_name("automl_trainer.py")
DATA_FILE = "data.csv"
AUTOML_TAG = "cumulo.automl.task"
# metric -> its goal; the first of each task is its default
METRICS = {
    "classification": {
        "accuracy": PrimaryMetricGoal.MAXIMIZE,
        "balanced_accuracy": PrimaryMetricGoal.MAXIMIZE,
        "f1_macro": PrimaryMetricGoal.MAXIMIZE,
    },
    "regression": {
        "r2": PrimaryMetricGoal.MAXIMIZE,
        "rmse": PrimaryMetricGoal.MINIMIZE,
        "mae": PrimaryMetricGoal.MINIMIZE,
    },
}
# estimator family -> its hyperparameters' search space (the trainer reads them by name)
MODELS: dict[str, dict[str, ParameterExpression]] = {
    "linear": {"linear_c": loguniform(-4, 4)},  # LogisticRegression's C or Ridge's alpha
    "random_forest": {"rf_n_estimators": choice(50, 100, 200), "rf_max_depth": choice(4, 8, 16)},
    "gradient_boosting": {
        "gb_learning_rate": loguniform(-4.6, 0),
        "gb_max_depth": choice(2, 3, 5),
    },
    "knn": {"knn_n_neighbors": choice(3, 5, 9, 15)},
}


class AutoMLConfig:
    """An automated search for the best scikit-learn model of a table.

    ``training_data``: a pandas DataFrame holding the features and the
    ``label_column_name`` column. ``primary_metric``: ``accuracy`` (default),
    ``balanced_accuracy`` or ``f1_macro`` for classification; ``r2`` (default),
    ``rmse`` or ``mae`` for regression. ``allowed_models``: some of
    ``linear``, ``random_forest``, ``gradient_boosting``, ``knn`` (default all).
    ``timeout_minutes`` ends the search (its running trials canceled).
    """

    @v1.arguments(
        "AutoMLConfig",
        {
            "iterations": "max_trials=",
            "max_concurrent_iterations": "max_concurrent_trials=",
            "experiment_timeout_minutes": "timeout_minutes=",
            "experiment_timeout_hours": "timeout_minutes=",
            "blocked_models": f"allowed_models= (some of {', '.join(MODELS)})",
            "featurization": "no parameter: featurization is always automatic (numeric columns "
            "standardized, the others one-hot encoded)",
            "enable_early_stopping": "timeout_minutes= and max_trials= (the search stops "
            "at either)",
            "validation_data": "n_cross_validations= (folds of training_data)",
        },
    )
    def __init__(
        self,
        task: str,
        training_data: Any,
        label_column_name: str,
        primary_metric: str | None = None,
        n_cross_validations: int = 5,
        max_trials: int = 20,
        max_concurrent_trials: int = 2,
        timeout_minutes: float | None = None,
        allowed_models: list[str] | None = None,
        compute_target: str = "local",
        seed: int | None = None,
    ) -> None:
        if task not in TASKS:
            raise InvalidInput(f"AutoMLConfig: task must be one of {', '.join(TASKS)}.")
        columns = getattr(training_data, "columns", None)
        if columns is None or not hasattr(training_data, "to_csv"):
            raise InvalidInput(
                "AutoMLConfig: training_data must be a pandas DataFrame "
                "(a tabular dataset's is dataset.to_pandas_dataframe())."
            )
        if label_column_name not in columns:
            raise InvalidInput(
                f"AutoMLConfig: the label column {label_column_name!r} is not in the data "
                f"(columns: {', '.join(map(str, columns))})."
            )
        if len(columns) < 2:
            raise InvalidInput("AutoMLConfig: the data needs at least one feature column.")
        metric = primary_metric or next(iter(METRICS[task]))
        if metric not in METRICS[task]:
            raise InvalidInput(
                f"AutoMLConfig: primary_metric {metric!r} is not a {task} metric; use "
                f"{', '.join(METRICS[task])}."
            )
        if isinstance(n_cross_validations, bool) or not 2 <= n_cross_validations <= 20:
            raise InvalidInput("AutoMLConfig: n_cross_validations must be between 2 and 20.")
        if len(training_data) < 2 * n_cross_validations:
            raise InvalidInput(
                f"AutoMLConfig: {len(training_data)} rows are too few for "
                f"{n_cross_validations}-fold cross-validation."
            )
        models = list(allowed_models or MODELS)
        unknown = [m for m in models if m not in MODELS]
        if unknown or not models:
            raise InvalidInput(
                f"AutoMLConfig: unknown allowed_models {unknown}; use {', '.join(MODELS)}."
            )
        self.task = task
        self.training_data = training_data
        self.label_column_name = label_column_name
        self.primary_metric = metric
        self.primary_metric_goal = METRICS[task][metric]
        self.n_cross_validations = n_cross_validations
        self.allowed_models = models
        self.compute_target = compute_target
        space: dict[str, ParameterExpression] = {"estimator": choice(*models)}
        for m in models:
            space.update(MODELS[m])
        self.hyperdrive = HyperDriveConfig(
            run_config=ScriptRunConfig(
                ".",  # replaced by the folder holding the data when submitted
                TRAINER.name,
                arguments=[
                    "--task",
                    task,
                    "--label",
                    str(label_column_name),
                    "--metric",
                    metric,
                    "--folds",
                    str(n_cross_validations),
                ],
                compute_target=compute_target,
            ),
            hyperparameter_sampling=BayesianParameterSampling(space, seed=seed),
            primary_metric_name=metric,
            primary_metric_goal=self.primary_metric_goal,
            max_total_runs=max_trials,
            max_concurrent_runs=max_concurrent_trials,
            max_duration_minutes=timeout_minutes,
        )

    def prepare(self, folder: Path) -> HyperDriveConfig:
        """The sweep to submit, its code folder ``folder`` filled with the trainer and data."""
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(TRAINER, folder / TRAINER.name)
        self.training_data.to_csv(folder / DATA_FILE, index=False)
        rc = self.hyperdrive.run_config
        self.hyperdrive.run_config = ScriptRunConfig(
            folder,
            rc.script,
            arguments=list(rc.arguments),
            compute_target=rc.compute_target,
        )
        return self.hyperdrive

    def __repr__(self) -> str:
        return (
            f"AutoMLConfig(task={self.task!r}, label={self.label_column_name!r}, "
            f"metric={self.primary_metric!r}, models={self.allowed_models}, "
            f"max_trials={self.hyperdrive.spec.max_total_runs})"
        )
