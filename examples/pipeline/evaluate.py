"""Pipeline step 3: score --model on the test split of --data; writes --report/report.json."""

import argparse
import json
import pickle
from pathlib import Path

import numpy as np

from cumulo import Run

p = argparse.ArgumentParser()
p.add_argument("--data", type=Path, required=True)
p.add_argument("--model", type=Path, required=True)
p.add_argument("--report", type=Path, required=True)
a = p.parse_args()
data = np.load(a.data / "data.npz")
model = pickle.loads((a.model / "model.pkl").read_bytes())
accuracy = float(model.score(data["x_test"], data["y_test"]))
(a.report / "report.json").write_text(json.dumps({"accuracy": accuracy}))
Run.get_context().log("accuracy", accuracy)
print(f"test accuracy {accuracy:.4f}")
