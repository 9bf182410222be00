"""Serving an entry script: ``init()`` once at start, ``run(raw_data)`` per request.

The script finds its model through ``CUMULO_MODEL_DIR`` (one model: its folder;
several: the folder holding ``<name>/<version>/``; also set as ``AZUREML_MODEL_DIR``,
the cloud service's name for it) or
``Model.get_model_path(name)``. ``run`` gets the request body as a string and
returns anything JSON can carry (numpy arrays and scalars included).

A request the script cannot use gets 400 with the script's message when
``run`` raises ``cumulo.InvalidInput`` (or the body is not valid JSON); any
other exception is the script's failure: 500, with the exception's type and
message, and the traceback in the replica's log under an error id the caller
is given.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from cumulo.core.errors import InvalidInput
from cumulo.serving.errors import BadInput, ModelLoadError

_DUMPS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class ScriptPredictor:
    """A user's scoring script, imported and initialised."""

    kind = "script"

    def __init__(self, script: str | Path, source_dir: str | Path | None = None) -> None:
        path = Path(script)
        if source_dir is not None and not path.is_absolute():
            path = Path(source_dir) / path
        if not path.is_file():
            raise ModelLoadError(f"The entry script {path} does not exist.")
        folder = str(Path(source_dir or path.parent).resolve())
        if folder not in sys.path:
            sys.path.insert(0, folder)
        if "CUMULO_MODEL_DIR" in os.environ:
            # Entry scripts written for the cloud service read its name for the same folder.
            os.environ.setdefault("AZUREML_MODEL_DIR", os.environ["CUMULO_MODEL_DIR"])
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ModelLoadError(f"Cannot import the entry script {path}.")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)  # errors surface with their traceback
        run = getattr(module, "run", None)
        if not callable(run):
            raise ModelLoadError(f"The entry script {path.name} defines no run(raw_data) function.")
        self._run = run
        self._takes_input = bool(inspect.signature(run).parameters)
        self.module = module
        init = getattr(module, "init", None)
        if callable(init):
            init()
        self.input_schema = getattr(module, "input_sample", None)

    def predict(self, body: bytes, content_type: str = "application/json") -> bytes:
        try:
            raw = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput("The request body is not UTF-8 text.") from None
        media = content_type.split(";", 1)[0].strip().lower() if content_type else ""
        if media in ("", "application/json") and raw.strip():
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise BadInput(f"Malformed JSON: {exc}") from None
        try:
            result = self._run(raw) if self._takes_input else self._run()
        except InvalidInput as exc:
            raise BadInput(exc.message) from None
        return _dumps(result)


def _dumps(result: Any) -> bytes:
    try:
        return orjson.dumps(result, option=_DUMPS)
    except TypeError:
        pass
    try:
        return orjson.dumps(result, option=_DUMPS, default=_fallback)
    except TypeError as exc:
        raise TypeError(f"run() returned a value JSON cannot carry: {exc}") from exc


def _fallback(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict(orient="records")
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
