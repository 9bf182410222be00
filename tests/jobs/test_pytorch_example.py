"""The PyTorch example, end to end on the CPU: a job trains the CNN, its model is
registered, deployed and scores. The test environment installs PyTorch's CPU build
(the `pytorch` extra), so this runs wherever the tests do."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from cumulo import Workspace
from cumulo.core import system_metrics as names

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pytorch"


def _run_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pytorch_example_run", EXAMPLE / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_pytorch_example_trains_as_a_job_and_is_served() -> None:
    example = _run_module()
    ws = Workspace.create("pytorch")
    args = argparse.Namespace(
        gpus=0, epochs=6, channels=8, interval=0.5, no_deploy=False, json=True
    )
    report = example.train_and_serve(ws, args)
    assert report["status"] == "Completed" and report["device"] == "cpu"
    assert report["accuracy"] > 0.8
    assert report["gpu_utilization_max"] is None  # no GPU here, none sampled
    assert report["model_version"] == 1
    assert report["scored"]["device"] == "cpu"
    right = sum(a == b for a, b in zip(report["scored"]["labels"], report["truth"], strict=True))
    assert right >= 6
    run = ws.get_run(report["run"])
    assert names.PROCESS_CPU in run.get_system_metrics()
    assert "outputs/model.pt" in run.get_file_names()
