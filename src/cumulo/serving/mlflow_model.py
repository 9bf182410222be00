"""Serving an MLflow model (a folder with an ``MLmodel`` file) with MLflow's scoring protocol.

``POST /invocations`` takes a JSON object with exactly one of ``dataframe_split``,
``dataframe_records``, ``instances`` or ``inputs`` (plus optional ``params``) and
answers ``{"predictions": ...}``; ``text/csv`` bodies are read as a table.

A scikit-learn model (the ``sklearn`` flavor, saved as skops, pickle or
cloudpickle) is loaded directly, without importing ``mlflow``: that keeps a
replica's start under a second and its memory small. Its input is checked
against the model's signature here (required columns, column order, numeric
types). When every input column is numeric and the model gives the same
answer for a plain array as for a table (checked once at load time), rows go
to the model as one float array: several times faster than building a pandas
table per request. Any other flavor is loaded through ``mlflow.pyfunc``
(``mlflow`` must then be installed where the replica runs).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import orjson
import yaml

from cumulo.serving.errors import BadInput, ModelLoadError, SchemaMismatch, UnsupportedMediaType

INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_NUMERIC = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}
_PANDAS_TYPES = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
    "string": "object",
}
_DUMPS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def read_mlmodel(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / "MLmodel"
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"Cannot read {path}: {exc}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("flavors"), dict):
        raise ModelLoadError(f"{path} is not an MLflow model description (no 'flavors').")
    return spec


def is_mlflow_model(model_dir: str | Path) -> bool:
    return (Path(model_dir) / "MLmodel").is_file()


def signature_columns(signature: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The column specs of a column-based input signature, or None (tensors or no signature)."""
    if not signature or not signature.get("inputs"):
        return None
    raw = signature["inputs"]
    specs = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(specs, list) or not specs:
        return None
    if any(not isinstance(s, dict) or s.get("type") == "tensor" for s in specs):
        return None
    return specs


def signature_schema(signature: dict[str, Any] | None, key: str) -> Any:
    """The ``inputs`` or ``outputs`` part of a signature, decoded."""
    if not signature or not signature.get(key):
        return None
    raw = signature[key]
    return json.loads(raw) if isinstance(raw, str) else raw


class MlflowPredictor:
    """An MLflow model ready to answer ``/invocations`` bodies."""

    kind = "mlflow"

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = Path(model_dir)
        spec = read_mlmodel(self.model_dir)
        self.flavors: dict[str, Any] = spec["flavors"]
        self.signature: dict[str, Any] | None = spec.get("signature")
        if "python_function" not in self.flavors:
            raise ModelLoadError(
                f"The MLflow model in {self.model_dir} has no python_function flavor "
                f"(it has {', '.join(self.flavors)}); it cannot be served."
            )
        self.columns = signature_columns(self.signature)
        self._names = [str(c.get("name")) for c in self.columns or []]
        self._required = [c["name"] for c in self.columns or [] if c.get("required", True)]
        self._pyfunc: Any = None
        self._predict: Any = None
        self.fast = False
        sk = self.flavors.get("sklearn")
        if isinstance(sk, dict) and sk.get("serialization_format", "pickle") in (
            "skops",
            "pickle",
            "cloudpickle",
        ):
            model = _load_sklearn(self.model_dir, sk)
            fn = self.flavors["python_function"].get("predict_fn") or "predict"
            self._predict = getattr(model, fn)
            self.fast = self._check_fast_path()
        else:
            self._pyfunc = _load_pyfunc(self.model_dir)

    # -------------------------------------------------------------- loading
    def _check_fast_path(self) -> bool:
        """Whether rows may go to the model as one float array (same answers, no table)."""
        if not self.columns or any(c.get("type") not in _NUMERIC for c in self.columns):
            return False
        import numpy as np
        import pandas as pd

        rows = self._example_rows()
        try:
            frame = pd.DataFrame(rows, columns=self._names).astype(self._pandas_dtypes())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = self._predict(frame)
                got = self._predict(np.asarray(rows, dtype=np.float64))
            same = bool(np.array_equal(np.asarray(expected), np.asarray(got)))
        except Exception:
            return False
        if same:
            # The model was fitted on a table and warns about plain arrays; the
            # columns were checked against the signature before each call.
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return same

    def _example_rows(self) -> list[list[Any]]:
        example = self.model_dir / "input_example.json"
        if example.is_file():
            try:
                data = json.loads(example.read_text())
                if isinstance(data, dict) and data.get("columns") == self._names:
                    rows = data.get("data")
                    if isinstance(rows, list) and rows:
                        return rows
            except ValueError:
                pass
        return [[0.0] * len(self._names), [1.0] * len(self._names)]

    def _pandas_dtypes(self) -> dict[str, str]:
        return {
            c["name"]: _PANDAS_TYPES.get(c.get("type", ""), "object") for c in self.columns or []
        }

    # -------------------------------------------------------------- scoring
    def predict(self, body: bytes, content_type: str = "application/json") -> bytes:
        """Answer one request body with ``{"predictions": ...}`` as JSON bytes."""
        media = content_type.split(";", 1)[0].strip().lower() if content_type else ""
        if media in ("", "application/json"):
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise BadInput(f"Invalid input. Malformed JSON: {exc}") from None
            data, params = self._parse(payload)
        elif media == "text/csv":
            data, params = self._csv(body), None
        else:
            raise UnsupportedMediaType(
                "This predictor only supports the following content types: "
                "['application/json', 'text/csv']."
            )
        return orjson.dumps({"predictions": _jsonable(self._run(data, params))}, option=_DUMPS)

    def _parse(self, payload: Any) -> tuple[Any, dict[str, Any] | None]:
        if not isinstance(payload, dict):
            raise BadInput(
                "Invalid input. The input must be a JSON dictionary with exactly one of the "
                f"input fields {set(INPUT_KEYS)}."
            )
        keys = [k for k in INPUT_KEYS if k in payload]
        if len(keys) != 1:
            raise BadInput(
                "The input must be a JSON dictionary with exactly one of the input fields "
                f"{set(INPUT_KEYS)}. Received dictionary with input fields: {sorted(payload)}."
            )
        params = payload.get("params")
        if params is not None and not isinstance(params, dict):
            raise BadInput("'params' must be a JSON object.")
        key, value = keys[0], payload[keys[0]]
        if self.columns is None:
            return self._untyped(key, value), params
        columns, rows = _rows(key, value, self._names)
        return self._typed(columns, rows), params

    def _untyped(self, key: str, value: Any) -> Any:
        """Input for a model without a column signature: a table, an array or a dict."""
        import numpy as np
        import pandas as pd

        try:
            if key == "dataframe_split":
                if not isinstance(value, dict):
                    raise BadInput("'dataframe_split' must be an object with 'columns' and 'data'.")
                return pd.DataFrame(value.get("data"), columns=value.get("columns"))
            if key == "dataframe_records":
                return pd.DataFrame.from_records(value)
            if isinstance(value, dict):
                return {k: np.asarray(v) for k, v in value.items()}
            if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
                return pd.DataFrame.from_records(value)
            return np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise BadInput(f"Invalid input. {exc}") from None

    def _typed(self, columns: list[str], rows: list[Any]) -> Any:
        """Rows checked against the signature: missing columns, order, types."""
        import numpy as np

        present = set(columns)
        missing = [c for c in self._required if c not in present]
        if missing:
            raise SchemaMismatch(
                f"Failed to enforce schema of data. Model is missing inputs {missing}. "
                f"Expected columns {self._names}."
            )
        if columns != self._names:
            where = {c: i for i, c in enumerate(columns)}
            rows = [[r[where[c]] if c in where else None for c in self._names] for r in rows]
        if self.fast:
            array = np.asarray(rows) if rows else np.empty((0, len(self._names)))
            if array.ndim != 2 or array.shape[1] != len(self._names):
                raise BadInput(
                    f"Invalid input. Each row must have {len(self._names)} values "
                    f"({', '.join(self._names)})."
                )
            if array.dtype.kind not in "fiu":
                raise SchemaMismatch(
                    "Failed to enforce schema of data. Incompatible input types: the columns "
                    f"{self._names} take numbers."
                )
            return array.astype(np.float64, copy=False)
        return self._frame(rows)

    def _frame(self, rows: list[Any]) -> Any:
        import pandas as pd

        try:
            frame = pd.DataFrame(rows, columns=self._names)
        except (ValueError, TypeError) as exc:
            raise BadInput(f"Invalid input. {exc}") from None
        for spec in self.columns or []:
            name, kind = spec["name"], spec.get("type")
            col = frame[name]
            try:
                if kind in ("double", "float"):
                    if col.dtype.kind not in "fiu":
                        raise TypeError(f"got {col.dtype}")
                    frame[name] = col.astype(_PANDAS_TYPES[kind])
                elif kind in ("long", "integer"):
                    if col.dtype.kind == "f" and not (col.dropna() % 1 == 0).all():
                        raise TypeError("got fractional numbers")
                    if col.dtype.kind not in "fiu":
                        raise TypeError(f"got {col.dtype}")
                    frame[name] = col.astype(_PANDAS_TYPES[kind])
                elif (kind == "boolean" and col.dtype.kind != "b") or (
                    kind == "string" and col.dtype.kind not in "OUS" and str(col.dtype) != "str"
                ):
                    raise TypeError(f"got {col.dtype}")
            except (TypeError, ValueError) as exc:
                raise SchemaMismatch(
                    f"Failed to enforce schema of data. Incompatible input types for column "
                    f"{name!r}: expected {kind}, {exc}."
                ) from None
        return frame

    def _csv(self, body: bytes) -> Any:
        import pandas as pd

        try:
            frame = pd.read_csv(io.BytesIO(body))
        except Exception as exc:
            raise BadInput(f"Invalid input. Cannot read the CSV body: {exc}") from None
        if self.columns is None:
            return frame
        return self._typed(list(frame.columns), frame.values.tolist())

    def _run(self, data: Any, params: dict[str, Any] | None) -> Any:
        if self._pyfunc is not None:
            try:
                return self._pyfunc.predict(data, params=params)
            except Exception as exc:
                if type(exc).__name__ == "MlflowException":
                    raise SchemaMismatch(str(getattr(exc, "message", exc))) from None
                raise
        return self._predict(data)


def _rows(key: str, value: Any, names: list[str]) -> tuple[list[str], list[Any]]:
    """(columns, rows) from any of the four JSON input forms."""
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise BadInput(
                "Invalid input. 'dataframe_split' must be an object with 'columns' and 'data' "
                "(a list of rows)."
            )
        columns = value.get("columns") or names
        return list(columns), value["data"]
    if key == "dataframe_records" or (
        isinstance(value, list) and value and isinstance(value[0], dict)
    ):
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise BadInput(f"Invalid input. '{key}' must be a list of objects (one per row).")
        present: set[str] = set().union(*value) if value else set(names)
        columns = [c for c in names if c in present]
        return columns, [[r.get(c) for c in columns] for r in value]
    if isinstance(value, dict):  # columns: {"x": [1, 2], "y": [3, 4]}
        columns = list(value)
        cols = [v if isinstance(v, list) else [v] for v in value.values()]
        if len({len(c) for c in cols}) > 1:
            raise BadInput(f"Invalid input. The columns in '{key}' have different lengths.")
        return columns, [list(r) for r in zip(*cols, strict=True)]
    if isinstance(value, list):
        rows = value if not value or isinstance(value[0], list) else [value]
        return names, rows
    raise BadInput(f"Invalid input. '{key}' must be a list of rows or an object of columns.")


def _jsonable(value: Any) -> Any:
    """Predictions as orjson can write them: arrays, tables and series become lists."""
    kind = type(value).__name__
    if kind == "ndarray":
        return value if value.dtype.kind in "fiub" else value.tolist()
    if kind == "DataFrame":
        return value.to_dict(orient="records")
    if kind == "Series":
        return value.tolist()
    return value


def _load_sklearn(model_dir: Path, flavor: dict[str, Any]) -> Any:
    fmt = flavor.get("serialization_format", "pickle")
    path = model_dir / str(flavor.get("pickled_model") or "model.pkl")
    if not path.is_file():
        raise ModelLoadError(f"The sklearn flavor names {path.name}, which is not in the model.")
    if fmt == "skops":
        try:
            import skops.io
        except ImportError as exc:
            raise ModelLoadError(
                "This model is saved in the skops format: install skops where it is served "
                "(pip install skops)."
            ) from exc
        return skops.io.load(path, trusted=flavor.get("skops_trusted_types"))
    with open(path, "rb") as fh:
        if fmt == "cloudpickle":
            import cloudpickle

            return cloudpickle.load(fh)
        import pickle

        return pickle.load(fh)


def _load_pyfunc(model_dir: Path) -> Any:
    # Deploying a model is the decision to run its code (as with an entry script).
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        import mlflow.pyfunc
    except ImportError as exc:
        raise ModelLoadError(
            "This MLflow model needs the mlflow package to be served: install mlflow in the "
            "deployment's environment (pip install mlflow)."
        ) from exc
    return mlflow.pyfunc.load_model(str(model_dir))
