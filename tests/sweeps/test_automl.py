"""AutoML: a search over scikit-learn estimators that beats a trivial baseline, whose best
trial's MLflow model is registered, scores new rows and is deployed; bad configs refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from cumulo import AutoMLConfig, Experiment, InvalidInput, Model, SweepRun, Workspace
from cumulo.sdk.automl import AUTOML_TAG


def _iris() -> object:
    from sklearn.datasets import load_iris

    return load_iris(as_frame=True).frame


def test_bad_automl_configs_say_what_is_wrong() -> None:
    import pandas as pd

    data = pd.DataFrame({"width": [float(i) for i in range(20)], "target": [0, 1] * 10})
    with pytest.raises(InvalidInput, match="task must be one of"):
        AutoMLConfig(task="clustering", training_data=data, label_column_name="target")
    with pytest.raises(InvalidInput, match="'species' is not in the data"):
        AutoMLConfig(task="classification", training_data=data, label_column_name="species")
    with pytest.raises(InvalidInput, match="'r2' is not a classification metric"):
        AutoMLConfig(
            task="classification", training_data=data, label_column_name="target",
            primary_metric="r2",
        )  # fmt: skip
    with pytest.raises(InvalidInput, match="unknown allowed_models \\['svm'\\]"):
        AutoMLConfig(
            task="classification", training_data=data, label_column_name="target",
            allowed_models=["svm"],
        )  # fmt: skip
    with pytest.raises(InvalidInput, match="20 rows are too few for 15-fold"):
        AutoMLConfig(
            task="classification", training_data=data, label_column_name="target",
            n_cross_validations=15,
        )  # fmt: skip
    with pytest.raises(InvalidInput, match="must be a pandas DataFrame"):
        AutoMLConfig(task="regression", training_data=[[1, 2]], label_column_name="y")
    config = AutoMLConfig(
        task="regression", training_data=data, label_column_name="target",
        primary_metric="rmse", allowed_models=["linear", "knn"],
    )  # fmt: skip
    spec = config.hyperdrive.spec
    assert spec.primary_metric_goal.value == "MINIMIZE" and spec.sampling.kind == "bayesian"
    assert set(spec.sampling.space) == {"estimator", "linear_c", "knn_n_neighbors"}


@pytest.mark.slow
def test_automl_beats_a_trivial_baseline_and_its_best_model_scores(
    ws: Workspace, tmp_path: Path
) -> None:
    import mlflow.pyfunc
    from sklearn.dummy import DummyClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    data = _iris()
    X, y = data.drop(columns="target"), data["target"]
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    baseline = cross_val_score(DummyClassifier(), X, y, cv=folds).mean()  # the majority class

    config = AutoMLConfig(
        task="classification",
        training_data=data,
        label_column_name="target",
        n_cross_validations=3,
        max_trials=3,
        max_concurrent_trials=3,
        allowed_models=["linear", "random_forest", "knn"],
        seed=4,
    )
    search = Experiment(ws, "automl").submit(config)
    assert isinstance(search, SweepRun)
    assert search.get_tags()[AUTOML_TAG] == "classification"
    details = search.wait_for_completion(show_output=False, timeout=600)
    assert details["status"] == "Completed"

    board = search.get_children_sorted_by_primary_metric()
    assert len(board) == 3
    best = search.get_best_run_by_primary_metric()
    assert best is not None
    accuracy = best.get_metrics()["accuracy"]
    assert accuracy > baseline + 0.5  # iris: ~0.95 against ~0.33
    tags = best.get_tags()
    assert tags["automl.estimator"] in ("linear", "random_forest", "knn")
    assert "sepal length (cm)" in tags["automl.featurization"]
    assert {"cv_std", "fit_seconds", "cv_seconds"} <= set(best.get_metrics())

    model = best.register_model("iris-automl", model_path="outputs/model")
    assert model.signature is not None
    local = model.download(tmp_path / "model")
    predicted = mlflow.pyfunc.load_model(str(local)).predict(X.head(20))
    assert (predicted == y.head(20).to_numpy()).mean() >= 0.9

    endpoint = Model.deploy(ws, "iris-automl", [model])  # served as it was saved, and scored
    rows = X.head(5)
    body = {"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}}
    assert endpoint.run(body) == {"predictions": predicted[:5].tolist()}


def test_a_k_neighbours_trial_saves_a_model_that_loads_back(tmp_path: Path) -> None:
    """MLflow saves scikit-learn models with skops, which refuses a KD-tree unless trusted."""
    import mlflow.pyfunc
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from cumulo.sdk.automl_trainer import _skops_types

    x, y = load_iris(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=3)).fit(x, y)
    path = tmp_path / "model"
    mlflow.sklearn.save_model(model, str(path), skops_trusted_types=_skops_types(model))
    loaded = mlflow.pyfunc.load_model(str(path))
    assert list(loaded.predict(x.head(3))) == list(model.predict(x.head(3)))
