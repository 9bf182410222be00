"""Pipeline step 1: split and scale scikit-learn's digits into --out/data.npz."""

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

p = argparse.ArgumentParser()
p.add_argument("--out", type=Path, required=True)
p.add_argument("--test-size", type=float, default=0.25)
a = p.parse_args()
x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=a.test_size, random_state=0)
scaler = StandardScaler().fit(x_train)
np.savez(
    a.out / "data.npz",
    x_train=scaler.transform(x_train),
    x_test=scaler.transform(x_test),
    y_train=y_train,
    y_test=y_test,
)
print(f"prepared {len(x_train)} training and {len(x_test)} test images")
