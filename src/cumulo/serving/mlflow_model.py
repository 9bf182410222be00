"""Serving an MLflow model (a folder with an ``MLmodel`` file) as ``mlflow models serve`` does.

``POST /invocations`` answers exactly as MLflow's scoring server
(``mlflow.pyfunc.scoring_server``) answers the same model: the same accepted
bodies (a JSON object with one of ``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs``, plus optional ``params``; ``text/csv``; Parquet),
the same enforcement of the model's signature and the same error codes and
messages. It gets there by calling MLflow's own parsing and prediction
(``scoring_server.invocations``) for every request, with one exception:

The fast path. A scikit-learn model (the ``sklearn`` flavor, saved as skops,
pickle or cloudpickle) whose signature has only ``double`` columns, a single
``float64`` tensor of rows, or no inputs at all is loaded directly, without
importing ``mlflow`` (a replica's start is then mostly scikit-learn's
import; see ``import_skops``). A request whose body is certain to be
accepted by MLflow and to reach the model as the same numbers (a plain JSON
content type, exactly one input key and no ``params``, every value a JSON
number, every named column present and no other; or a CSV table of exactly
the named columns, read as MLflow reads it) goes to the model as one float
array: several times faster than MLflow's per-request pandas table and
schema enforcement. For a column signature the model is checked once at load
time to give the same answers for an array as for a table. Anything else,
and anything the model fails on, takes MLflow's path. A replica loads
MLflow's pyfunc model only when a body first needs it: a replica that only
sees fast-path bodies never imports ``mlflow`` (about 60 MiB and two seconds
on two cores), and the first body off the fast path waits for that load once
(``predict_or_defer``: the scoring server loads it in a thread and goes on
answering fast-path bodies; others off it wait for the same load).

Differences kept on purpose: an error body leaves out MLflow's
``stack_trace`` (it goes to the deployment's log under the ``error_id`` the
body gives), and a request without a content type is read as JSON (the
endpoint's router does the same) where MLflow answers 500.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import orjson
import yaml

from cumulo.serving.errors import LoadFirst, ModelLoadError, Refusal

INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_DUMPS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
# Content types MLflow reads as UTF-8 JSON with nothing more to check.
_PLAIN_JSON = frozenset(
    f"application/json{sep}{charset}"
    for sep in ("; ", ";")
    for charset in ("charset=utf-8", "charset=UTF-8")
) | {"application/json"}
# JSON words that a fast-path body never has: MLflow casts booleans to numbers
# and refuses nulls, so such bodies take its path (a column name holding one
# of these words only costs that request the fast path).
_NOT_NUMBERS = (b"true", b"false", b"null")
_SERVING_ENV = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"  # what MLflow's scoring server sets
log = logging.getLogger("cumulo.serving")


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
    specs = signature_schema(signature, "inputs")
    if not isinstance(specs, list) or not specs:
        return None
    if any(not isinstance(s, dict) or s.get("type") == "tensor" for s in specs):
        return None
    return specs


def signature_schema(signature: dict[str, Any] | None, key: str) -> Any:
    """The ``inputs``, ``outputs`` or ``params`` part of a signature, decoded."""
    if not signature or not signature.get(key):
        return None
    raw = signature[key]
    return json.loads(raw) if isinstance(raw, str) else raw


def fast_mode(signature: dict[str, Any] | None) -> tuple[str, int] | None:
    """(mode, width) of the array fast path a signature allows, or None.

    ``columns``: named ``double`` columns, all required; ``tensor``: one
    unnamed ``float64`` tensor of rows of ``width`` numbers; ``free``: no
    input signature (rows of numbers go to the model as MLflow builds them).
    A signature with params always takes MLflow's path.
    """
    if signature_schema(signature, "params"):
        return None
    inputs = signature_schema(signature, "inputs")
    if not inputs:
        return ("free", 0)
    if not isinstance(inputs, list):
        return None
    if all(
        isinstance(s, dict)
        and s.get("type") == "double"
        and isinstance(s.get("name"), str)
        and s.get("required", True)
        for s in inputs
    ):
        return ("columns", len(inputs))
    if len(inputs) == 1 and isinstance(inputs[0], dict) and inputs[0].get("type") == "tensor":
        spec = inputs[0].get("tensor-spec") or {}
        shape = spec.get("shape")
        if (
            "name" not in inputs[0]
            and spec.get("dtype") == "float64"
            and isinstance(shape, list)
            and len(shape) == 2
            and shape[0] == -1
            and isinstance(shape[1], int)
            and shape[1] > 0
        ):
            return ("tensor", shape[1])
    return None


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
        self._name_set = frozenset(self._names)
        self._pyfunc: Any = None
        self._schema: Any = None
        self._loading = threading.Lock()
        self._predict: Any = None
        self.fast = False
        self._mode, self._width = "", 0
        sk = self.flavors.get("sklearn")
        mode = fast_mode(self.signature)
        if (
            mode is not None
            and isinstance(sk, dict)
            and sk.get("serialization_format", "pickle") in ("skops", "pickle", "cloudpickle")
        ):
            model = _load_sklearn(self.model_dir, sk)
            fn = self.flavors["python_function"].get("predict_fn") or "predict"
            self._predict = getattr(model, fn)
            self._mode, self._width = mode
            self.fast = self._mode != "columns" or self._same_for_arrays()
        if not self.fast:
            self._predict = None
            self._mlflow()

    # -------------------------------------------------------------- loading
    def _same_for_arrays(self) -> bool:
        """Whether the model gives the same answers for a float array as for a table."""
        import numpy as np
        import pandas as pd

        rows = self._example_rows()
        try:
            frame = pd.DataFrame(rows, columns=self._names).astype("float64")
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

    def _mlflow(self) -> tuple[Any, Any]:
        """MLflow's pyfunc model and input schema, loaded on first need."""
        with self._loading:
            if self._pyfunc is None:
                started = time.monotonic()
                self._pyfunc = _load_pyfunc(self.model_dir)
                self._schema = self._pyfunc.metadata.get_input_schema()
                log.info("loaded through mlflow in %.2f s", time.monotonic() - started)
        return self._pyfunc, self._schema

    # -------------------------------------------------------------- scoring
    def predict(self, body: bytes, content_type: str = "application/json") -> bytes:
        """Answer one request body with ``{"predictions": ...}`` as JSON bytes."""
        return self._answer(body, content_type, defer=False)

    def predict_or_defer(self, body: bytes, content_type: str = "application/json") -> bytes:
        """As ``predict``, but raises ``LoadFirst`` when the body needs MLflow's path unloaded.

        The scoring server then loads it off its event loop, so that fast-path
        requests go on being answered meanwhile, and asks again.
        """
        return self._answer(body, content_type, defer=True)

    def _answer(self, body: bytes, content_type: str, defer: bool) -> bytes:
        content_type = content_type or "application/json"
        array = None
        if self.fast and content_type in _PLAIN_JSON:
            array = self._fast_input(body)
        elif self.fast and content_type == "text/csv" and self._mode == "columns":
            array = self._fast_csv(body)
        if array is not None:
            answer = self._fast_answer(array)
            if answer is not None:
                return answer
        if defer and self._pyfunc is None:
            raise LoadFirst(self._mlflow)
        return self._by_mlflow(body, content_type)

    def _fast_csv(self, body: bytes) -> Any:
        """A CSV table read as MLflow reads it, when it has exactly the signature's columns."""
        import numpy as np
        import pandas as pd

        try:
            frame = pd.read_csv(io.StringIO(body.decode("utf-8")))
        except Exception:
            return None
        columns = list(frame.columns)
        if len(frame) == 0 or len(columns) != len(self._names) or set(columns) != self._name_set:
            return None
        if any(kind not in "fi" for kind in (t.kind for t in frame.dtypes)):
            return None  # MLflow converts other text to numbers or refuses it: its path says
        array = frame.to_numpy(dtype=np.float64)
        if columns != self._names:
            array = array[:, [columns.index(c) for c in self._names]]
        return None if np.isnan(array).any() else array

    def _fast_input(self, body: bytes) -> Any:
        """The model's input as one array when MLflow surely reads the body as these numbers."""
        if any(word in body for word in _NOT_NUMBERS):
            return None
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if type(payload) is not dict or len(payload) != 1:
            return None
        ((key, value),) = payload.items()
        if key not in INPUT_KEYS:
            return None
        if self._mode == "columns":
            rows = self._column_rows(key, value)
        else:
            rows = value if key in ("inputs", "instances") and type(value) is list else None
        if rows is None:
            return None
        import numpy as np

        try:
            array = np.asarray(rows)
        except (ValueError, TypeError):  # ragged rows
            return None
        if array.ndim != 2 or array.shape[0] == 0 or array.dtype.kind not in "if":
            return None
        if self._mode == "free":
            return array
        if array.shape[1] != self._width:
            return None
        return array.astype(np.float64, copy=False)

    def _column_rows(self, key: str, value: Any) -> Any:
        """Rows in the signature's column order, when every named column is there and no other."""
        names = self._names
        if key == "dataframe_split":
            if type(value) is not dict or value.keys() != {"columns", "data"}:
                return None
            columns, data = value["columns"], value["data"]
            if type(columns) is not list or len(columns) != len(names) or type(data) is not list:
                return None
            if columns == names:
                return data
            if set(columns) != self._name_set:
                return None
            where = [columns.index(c) for c in names]
            try:
                return [[row[i] for i in where] for row in data]
            except (TypeError, IndexError, KeyError):
                return None
        if type(value) is list:
            if key == "dataframe_records" or (value and type(value[0]) is dict):
                if not all(type(r) is dict and r.keys() == self._name_set for r in value):
                    return None
                return [[r[c] for c in names] for r in value]
            return None
        if key in ("inputs", "instances") and type(value) is dict:
            if value.keys() != self._name_set:
                return None
            cols = [value[c] for c in names]
            if not all(type(c) is list for c in cols) or len({len(c) for c in cols}) != 1:
                return None
            return list(zip(*cols, strict=True))
        return None

    def _fast_answer(self, array: Any) -> bytes | None:
        """The model's answer as MLflow would write it, or None to let MLflow's path answer."""
        try:
            out = self._predict(array)
            if type(out).__name__ != "ndarray":
                return None
            if out.dtype.kind not in "biu" and out.dtype != "float64":
                out = out.tolist()  # as MLflow writes them (float32 widened, strings)
            return orjson.dumps({"predictions": out}, option=_DUMPS)
        except Exception:
            return None  # MLflow's path gives its own answer to the failure

    def _by_mlflow(self, body: bytes, content_type: str) -> bytes:
        model, schema = self._mlflow()  # imports mlflow, the first time
        from mlflow.exceptions import MlflowException
        from mlflow.pyfunc import scoring_server

        invocations: Any = scoring_server.invocations
        try:
            result = invocations(body, content_type, model, schema)
        except MlflowException as exc:
            raise _refusal(exc) from None
        if result.status != 200:
            raise Refusal(result.status, result.response.encode(), result.mimetype)
        answer: bytes = result.response.encode()
        return answer


def _refusal(exc: Any) -> Refusal:
    """MLflow's error body; a stack trace goes to the log, the body names it by an id."""
    data = json.loads(exc.serialize_as_json())
    trace = data.pop("stack_trace", None)
    if trace:
        error_id = uuid.uuid4().hex[:12]
        log.warning("request refused (error id %s):\n%s", error_id, trace)
        data["error_id"] = error_id
    return Refusal(
        exc.get_http_status_code(), orjson.dumps(data), "application/json", str(data["message"])
    )


def _load_sklearn(model_dir: Path, flavor: dict[str, Any]) -> Any:
    fmt = flavor.get("serialization_format", "pickle")
    path = model_dir / str(flavor.get("pickled_model") or "model.pkl")
    if not path.is_file():
        raise ModelLoadError(f"The sklearn flavor names {path.name}, which is not in the model.")
    if fmt == "skops":
        try:
            skops_io = import_skops()
        except ImportError as exc:
            raise ModelLoadError(
                "This model is saved in the skops format: install skops where it is served "
                "(pip install skops)."
            ) from exc
        return skops_io.load(path, trusted=flavor.get("skops_trusted_types"))
    with open(path, "rb") as fh:
        if fmt == "cloudpickle":
            import cloudpickle

            return cloudpickle.load(fh)
        import pickle

        return pickle.load(fh)


class _RefuseModule:
    """A finder that makes importing one module fail, as if it were not installed."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == self.name:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


# scikit-learn's array-API shim for torch: importing it imports torch.
_TORCH_SHIM = "sklearn.externals.array_api_compat.torch"


def import_skops() -> Any:
    """``skops.io``, imported without importing torch.

    On import, skops lists scikit-learn's estimators (its default trusted
    types) with ``sklearn.utils.all_estimators``, which imports every
    scikit-learn package to look inside. One of them is the array-API shim for
    torch, which imports torch wherever it is installed (about 1.5 s and
    200 MiB on a replica) though the listing skips ``sklearn.externals`` and
    finds no estimator there. The shim is refused for the length of that
    import only (the listing ignores packages that fail to import), so the
    trusted types are the same and the shim loads later if anything asks.
    """
    if "skops.io" in sys.modules or _TORCH_SHIM in sys.modules:
        import skops.io

        return skops.io
    refuse = _RefuseModule(_TORCH_SHIM)
    sys.meta_path.insert(0, refuse)
    try:
        import skops.io
    finally:
        sys.meta_path.remove(refuse)
    return skops.io


def _load_pyfunc(model_dir: Path) -> Any:
    # Deploying a model is the decision to run its code (as with an entry script).
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ[_SERVING_ENV] = "true"
    try:
        import mlflow.pyfunc
        import mlflow.pyfunc.scoring_server
    except ImportError as exc:
        raise ModelLoadError(
            "This MLflow model needs the mlflow package to be served: install mlflow in the "
            "deployment's environment (pip install mlflow)."
        ) from exc
    return mlflow.pyfunc.load_model(str(model_dir))
