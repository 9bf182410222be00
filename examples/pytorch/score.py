"""Entry script of the digits CNN endpoint: ``init()`` loads the model, ``run()`` scores rows."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from model import DigitsCNN, as_images, device

loaded: dict[str, Any] = {}


def init() -> None:
    found = next(Path(os.environ["CUMULO_MODEL_DIR"]).rglob("model.pt"))
    saved = torch.load(found, map_location="cpu")
    model = DigitsCNN(saved["channels"])
    model.load_state_dict(saved["state"])
    loaded["device"] = device()
    loaded["model"] = model.to(loaded["device"]).eval()


def run(raw_data: str) -> dict[str, Any]:
    rows = torch.tensor(json.loads(raw_data)["data"], dtype=torch.float32)
    if rows.ndim != 2 or rows.shape[1] != 64:
        raise ValueError(f"expected rows of 64 pixel values, got shape {tuple(rows.shape)}")
    with torch.no_grad():
        labels = loaded["model"](as_images(rows).to(loaded["device"])).argmax(1)
    return {"labels": [int(v) for v in labels.cpu()], "device": loaded["device"].type}
