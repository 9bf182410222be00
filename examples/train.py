"""Train a small classifier on scikit-learn's digits and log it to a Cumulo run.

Works three ways: imported by the demo (``train(run, alpha=..., epochs=...)``),
submitted as a job (``Run.get_context()`` finds the run), or run by hand
(an offline run prints what would be logged).
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, f1_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def load(data: Path | None) -> tuple[Any, Any]:
    """The digits: from a dataset's folder (``digits.csv``, label last) or scikit-learn's copy."""
    if data is None:
        return load_digits(return_X_y=True)
    table = np.loadtxt(data / "digits.csv", delimiter=",", skiprows=1)
    return table[:, :-1], table[:, -1].astype(int)


def train(
    run: Any,
    alpha: float,
    epochs: int,
    outputs: Path = Path("outputs"),
    data: Path | None = None,
) -> float:
    """Fit epoch by epoch, logging metrics; save the model and a confusion matrix."""
    x, y = load(data)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    model = SGDClassifier(loss="log_loss", alpha=alpha, random_state=0)
    classes = np.unique(y)
    run.log_params({"alpha": alpha, "epochs": epochs, "model": "SGDClassifier"})
    accuracy = 0.0
    for epoch in range(epochs):
        model.partial_fit(x_train, y_train, classes=classes)
        accuracy = float(accuracy_score(y_test, model.predict(x_test)))
        run.log("accuracy", accuracy, step=epoch)
        run.log("loss", float(log_loss(y_test, model.predict_proba(x_test))), step=epoch)
    predictions = model.predict(x_test)
    run.log("f1_macro", float(f1_score(y_test, predictions, average="macro")))
    run.log_list("classes", [int(c) for c in classes])
    fig, ax = plt.subplots(figsize=(5, 5))
    ConfusionMatrixDisplay.from_predictions(y_test, predictions, ax=ax, colorbar=False)
    ax.set_title(f"alpha={alpha}")
    run.log_image("confusion_matrix", plot=fig)
    plt.close(fig)
    outputs.mkdir(parents=True, exist_ok=True)
    model_file = outputs / "model.pkl"
    model_file.write_bytes(pickle.dumps({"scaler": scaler, "model": model}))
    run.upload_file("outputs/model.pkl", model_file)
    return accuracy


if __name__ == "__main__":
    from cumulo import Run

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--data", type=Path, default=None, help="A dataset's folder.")
    args = parser.parse_args()
    context = Run.get_context()
    print(f"accuracy {train(context, args.alpha, args.epochs, data=args.data):.4f}")
