"""Fixtures for the registry and endpoint tests: a logged MLflow model, an entry script."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest

IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]

SCORE_PY = textwrap.dedent(
    """
    import json
    import os
    import time
    from pathlib import Path

    from cumulo import InvalidInput, Model

    weights = None


    def init():
        global weights
        if os.environ.get("FAIL_INIT"):
            raise RuntimeError("cannot load the weights: " + os.environ["FAIL_INIT"])
        folder = Path(os.environ["CUMULO_MODEL_DIR"])
        assert folder == Path(Model.get_model_path("scaler"))
        weights = json.loads((folder / "weights.json").read_text())


    def run(raw_data):
        data = json.loads(raw_data)
        if data.get("crash"):
            os._exit(7)
        if data.get("boom"):
            raise RuntimeError("boom in run")
        if "sleep" in data:
            time.sleep(data["sleep"])
        rows = data.get("data")
        if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == 2 for r in rows):
            raise InvalidInput("data must be a list of rows of 2 numbers")
        return {
            "version": weights["version"],
            "pid": os.getpid(),
            "result": [weights["scale"] * (a + b) for a, b in rows],
        }
    """
)


@pytest.fixture
def ws():
    from cumulo import Workspace

    return Workspace.create(f"ws-{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="session")
def mlflow_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An iris classifier logged with mlflow.sklearn.log_model to a local file store."""
    root = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.setenv("DO_NOT_TRACK", "true")
        import mlflow.sklearn
        from mlflow.models import infer_signature
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        import mlflow

        x, y = load_iris(return_X_y=True, as_frame=True)
        model = LogisticRegression(max_iter=500).fit(x, y)
        mlflow.set_tracking_uri((root / "mlruns").as_uri())
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(x, model.predict(x)),
                input_example=x.head(2),
            )
        target = root / "model"
        mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(target))
        mlflow.set_tracking_uri("")
    return target


def make_script_model(folder: Path, version: str, scale: float = 2.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.json").write_text(json.dumps({"version": version, "scale": scale}))
    return folder


@pytest.fixture
def scoring_code(tmp_path: Path) -> Path:
    folder = tmp_path / "serve"
    folder.mkdir()
    (folder / "score.py").write_text(SCORE_PY)
    return folder
