"""One AutoML trial, run as a job's script: build the estimator the sweep drew, score it by
cross-validation, then fit it on all the data and save it as an MLflow model.

The job's snapshot holds this file and ``data.csv``; the trial's hyperparameters
arrive as arguments (``--estimator random_forest --rf_n_estimators 100 ...``),
each estimator reading only its own. The trial logs the primary metric (the
mean cross-validated score), its spread and the fit time, tags the estimator,
its hyperparameters and the featurization steps, and leaves the fitted
pipeline in ``outputs/model`` (an MLflow model with its signature).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

# metric -> (scikit-learn scorer, sign that turns the scorer's value into the metric)
SCORERS = {
    "accuracy": ("accuracy", 1.0),
    "balanced_accuracy": ("balanced_accuracy", 1.0),
    "f1_macro": ("f1_macro", 1.0),
    "r2": ("r2", 1.0),
    "rmse": ("neg_root_mean_squared_error", -1.0),
    "mae": ("neg_mean_absolute_error", -1.0),
}


def estimator(task: str, name: str, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The estimator ``name`` with the hyperparameters drawn for it, and those values."""
    from sklearn import ensemble, linear_model, neighbors

    classify = task == "classification"
    if name == "linear":
        if classify:
            params: dict[str, Any] = {"C": args.linear_c, "max_iter": 2000}
            return linear_model.LogisticRegression(**params), params
        params = {"alpha": args.linear_c}
        return linear_model.Ridge(**params), params
    if name == "random_forest":
        params = {
            "n_estimators": args.rf_n_estimators,
            "max_depth": args.rf_max_depth,
            "random_state": 0,
        }
        cls = ensemble.RandomForestClassifier if classify else ensemble.RandomForestRegressor
        return cls(**params), params
    if name == "gradient_boosting":
        params = {
            "learning_rate": args.gb_learning_rate,
            "max_depth": args.gb_max_depth,
            "random_state": 0,
        }
        cls = (
            ensemble.HistGradientBoostingClassifier
            if classify
            else ensemble.HistGradientBoostingRegressor
        )
        return cls(**params), params
    if name == "knn":
        params = {"n_neighbors": args.knn_n_neighbors}
        cls = neighbors.KNeighborsClassifier if classify else neighbors.KNeighborsRegressor
        return cls(**params), params
    raise SystemExit(f"unknown estimator {name!r}")


def main() -> None:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from cumulo.sdk.workspace import Run

    p = argparse.ArgumentParser()
    p.add_argument("--task", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--metric", required=True)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--estimator", required=True)
    p.add_argument("--linear_c", type=float, default=1.0)
    p.add_argument("--rf_n_estimators", type=int, default=100)
    p.add_argument("--rf_max_depth", type=int, default=8)
    p.add_argument("--gb_learning_rate", type=float, default=0.1)
    p.add_argument("--gb_max_depth", type=int, default=3)
    p.add_argument("--knn_n_neighbors", type=int, default=5)
    args = p.parse_args()

    run = Run.get_context()
    data = pd.read_csv("data.csv")
    y = data.pop(args.label)
    numeric = list(data.select_dtypes("number").columns)
    categorical = [c for c in data.columns if c not in numeric]
    featurize = ColumnTransformer(
        [
            ("numeric", StandardScaler(), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    model, params = estimator(args.task, args.estimator, args)
    pipeline = Pipeline([("featurize", featurize), ("model", model)])
    split = (
        StratifiedKFold(args.folds, shuffle=True, random_state=0)
        if args.task == "classification"
        else KFold(args.folds, shuffle=True, random_state=0)
    )
    scorer, sign = SCORERS[args.metric]
    started = time.perf_counter()
    scores = sign * cross_val_score(pipeline, data, y, cv=split, scoring=scorer)
    cv_seconds = time.perf_counter() - started
    started = time.perf_counter()
    pipeline.fit(data, y)
    fit_seconds = time.perf_counter() - started
    run.set_tags(
        {
            "automl.estimator": args.estimator,
            "automl.model_class": type(model).__name__,
            "automl.hyperparameters": json.dumps(params),
            "automl.featurization": json.dumps(
                {"standard_scaler": numeric, "one_hot_encoder": categorical}
            ),
        }
    )
    run.log("cv_std", float(scores.std()))
    run.log("cv_seconds", cv_seconds)
    run.log("fit_seconds", fit_seconds)
    mlflow.sklearn.save_model(
        pipeline,
        "outputs/model",
        signature=infer_signature(data, pipeline.predict(data)),
        input_example=data.head(3),
        # The pipeline is the trial's own: the types skops does not know by
        # default (a KD-tree, a distance metric of k-neighbours) are trusted.
        skops_trusted_types=_skops_types(pipeline),
    )
    run.log(args.metric, float(scores.mean()))  # last: the trial's result once all is saved
    run.flush()


def _skops_types(model: Any) -> list[str] | None:
    """The types of ``model`` that MLflow's skops format refuses unless trusted."""
    try:
        import skops.io
    except ImportError:  # MLflow saves with cloudpickle then
        return None
    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


if __name__ == "__main__":
    main()
