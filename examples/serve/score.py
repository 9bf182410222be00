"""Entry script of the digits endpoint: ``init()`` loads the model, ``run()`` scores rows."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

model: dict[str, Any] = {}


def init() -> None:
    folder = Path(os.environ["CUMULO_MODEL_DIR"])
    model.update(pickle.loads(next(folder.rglob("model.pkl")).read_bytes()))


def run(raw_data: str) -> list[int]:
    rows = np.asarray(json.loads(raw_data)["data"], dtype=float)
    if rows.ndim != 2 or rows.shape[1] != 64:
        raise ValueError(f"expected rows of 64 pixel values, got shape {rows.shape}")
    return [int(p) for p in model["model"].predict(model["scaler"].transform(rows))]
