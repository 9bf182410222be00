"""The sweeps benchmark's report: each driver against the ideal, the breakdown, the goal."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import sweep_overhead  # noqa: E402


def test_the_report_compares_every_driver_with_the_ideal() -> None:
    result = {
        "trials": 50,
        "concurrent": 4,
        "work_s": 0.5,
        "ideal_s": 6.25,
        "cumulo": {
            "wall_s": 7.0,
            "warmup_s": 2.0,
            "trials": 50,
            "best_loss": 0.001,
            "optuna": "5.0.0",
            "dispatch_median_s": 0.05,
            "first_trial_s": 0.1,
            "closing_s": 0.1,
            "queued_to_running_s": 0.1,
            "running_s": 0.6,
            "finalizing_s": 0.01,
        },
        "optuna": {"wall_s": 6.5, "trials": 50, "failed": 0, "best_loss": 0.002},
        "optuna_cumulo": {"wall_s": 7.0, "trials": 50, "failed": 2, "best_loss": 0.002},
        "ray": {"skipped": "Ray Tune is not installed (ray)"},
    }
    text = sweep_overhead.render(result, ["python", "benchmarks/run.py", "sweeps"], 0.0, None)
    assert "| Cumulo sweep on a `LocalPool` | 7.00 s | 1.12× | 50 |" in text
    assert "| Optuna alone, `n_jobs` | 6.50 s | 1.04× |" in text
    assert "2 trials failed" in text
    assert "| Ray Tune `Tuner` | — | — | — | — | Ray Tune is not installed (ray) |" in text
    assert "| 0.05 s | 0.10 s | 0.10 s | 0.10 s | 0.60 s | 0.01 s |" in text
    assert "within 1.2× of the ideal: 1.12× — **met**" in text
    assert "logging with Cumulo: 1.00× its time" in text
