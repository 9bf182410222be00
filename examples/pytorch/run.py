"""Train the digits CNN as a job, register its model, deploy it and score it.

    python examples/pytorch/run.py                  # an embedded workspace, on the CPU
    python examples/pytorch/run.py --gpus 1         # the job asks for one GPU
    python examples/pytorch/run.py --url http://127.0.0.1:5000 --json

Needs PyTorch and scikit-learn in this interpreter (the job runs with it:
environment "current"). Prints what happened; with ``--json``, as its last line
one JSON object (training time, accuracy, the GPU's peak utilisation and memory
from the run's system metrics, the endpoint's answer) for scripts such as
benchmarks/gpu_check.sh.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import httpx
from sklearn.datasets import load_digits

from cumulo import (
    DeploymentConfig,
    Experiment,
    InferenceConfig,
    Model,
    Resources,
    ScriptRunConfig,
    Workspace,
)

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a Cumulo server (default: an embedded workspace)")
    parser.add_argument("--workspace", default="pytorch")
    parser.add_argument("--gpus", type=int, default=0, help="GPUs the job asks for")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--channels", type=int, default=16, help="width of the network")
    parser.add_argument("--interval", type=float, default=2.0, help="system metrics, seconds")
    parser.add_argument("--no-deploy", action="store_true", help="train and register only")
    parser.add_argument("--json", action="store_true", help="print one JSON report")
    args = parser.parse_args()
    if args.url:
        ws = Workspace.connect(args.url, args.workspace)
    else:
        ws = Workspace.create(args.workspace, exist_ok=True)
    report = train_and_serve(ws, args)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")


def train_and_serve(ws: Workspace, args: argparse.Namespace) -> dict[str, Any]:
    config = ScriptRunConfig(
        HERE,
        "train.py",
        arguments=["--epochs", args.epochs, "--channels", args.channels],
        resources=Resources(gpus=args.gpus),
        system_metrics_interval=args.interval,
        display_name=f"cnn-{'gpu' if args.gpus else 'cpu'}",
    )
    run = Experiment(ws, "digits-cnn").submit(config)
    details = run.wait_for_completion(show_output=not args.json, raise_on_error=True)
    metrics = run.get_metrics()
    system = run.get_system_metrics()
    report: dict[str, Any] = {
        "run": run.id,
        "status": details["status"],
        "device": run.get_params().get("device"),
        "accuracy": metrics["accuracy"][-1],
        "train_seconds": metrics["train_seconds"],
        "gpu_utilization_max": _peak(system, "utilization_percentage"),
        "gpu_memory_megabytes_max": _peak(system, "memory_usage_megabytes"),
    }
    model = run.register_model("digits-cnn", model_path="outputs/model.pt")
    report["model_version"] = model.version
    if args.no_deploy:
        return report
    scoring = InferenceConfig(entry_script="score.py", source_directory=str(HERE))
    endpoint = Model.deploy(
        ws, "digits-cnn", [model], scoring, DeploymentConfig(replicas=1), overwrite=True
    )
    key, _ = endpoint.get_keys()
    digits = load_digits()
    started = time.perf_counter()
    answer = httpx.post(
        endpoint.scoring_uri,
        json={"data": digits.data[:8].tolist()},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    answer.raise_for_status()
    report["score_seconds"] = round(time.perf_counter() - started, 3)
    report["scored"] = answer.json()
    report["truth"] = [int(t) for t in digits.target[:8]]
    report["endpoint"] = endpoint.scoring_uri
    return report


def _peak(system: dict[str, list[float]], field: str) -> float | None:
    """The highest value of a GPU's ``field`` in the run's system metrics (None: no GPU)."""
    found = [max(v) for k, v in system.items() if k.startswith("system/gpu_") and k.endswith(field)]
    return max(found) if found else None


if __name__ == "__main__":
    main()
