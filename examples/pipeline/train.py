"""Pipeline step 2: fit a classifier on --data, save it to --model/model.pkl."""

import argparse
import pickle
from pathlib import Path

import numpy as np
from sklearn.linear_model import SGDClassifier

from cumulo import Run

p = argparse.ArgumentParser()
p.add_argument("--data", type=Path, required=True)
p.add_argument("--model", type=Path, required=True)
p.add_argument("--alpha", type=float, default=1e-3)
a = p.parse_args()
data = np.load(a.data / "data.npz")
model = SGDClassifier(loss="log_loss", alpha=a.alpha, random_state=0, max_iter=30, tol=None)
model.fit(data["x_train"], data["y_train"])
(a.model / "model.pkl").write_bytes(pickle.dumps(model))
run = Run.get_context()
run.log_params({"alpha": a.alpha})
run.log("train_accuracy", float(model.score(data["x_train"], data["y_train"])))
