"""Pipeline step 4: register --model as a new model version when --report clears --min-accuracy."""

import argparse
import json
from pathlib import Path

from cumulo import Model, Run

p = argparse.ArgumentParser()
p.add_argument("--model", type=Path, required=True)
p.add_argument("--report", type=Path, required=True)
p.add_argument("--name", default="digits-pipeline")
p.add_argument("--min-accuracy", type=float, default=0.9)
a = p.parse_args()
accuracy = json.loads((a.report / "report.json").read_text())["accuracy"]
run = Run.get_context()
if accuracy < a.min_accuracy:
    raise SystemExit(f"accuracy {accuracy:.4f} is under {a.min_accuracy}: not registered")
if isinstance(run, Run):
    model = Model.register(
        run.workspace, a.model / "model.pkl", a.name, tags={"accuracy": f"{accuracy:.4f}"}
    )
    print(f"registered {a.name} version {model.version}")
