"""Optuna draws every trial's values: the same seed draws the same sweep, grids enumerate."""

from __future__ import annotations

import itertools
import math
import statistics
from typing import Any

import pytest

from cumulo.core.sweeps import (
    Sampling,
    SweepSpec,
    TrialInfo,
    choice,
    lognormal,
    loguniform,
    normal,
    qloguniform,
    qnormal,
    quniform,
    randint,
    uniform,
)
from cumulo.services import sweep_optuna

SPACE = {
    "lr": loguniform(-6, -1),
    "units": quniform(8, 64, 8),
    "layers": randint(4),
    "act": choice("relu", "tanh"),
    "dropout": uniform(0, 0.5),
    "shift": normal(0, 1),
}


def _spec(kind: str, seed: int | None, space: dict[str, Any] = SPACE, total: int = 12) -> SweepSpec:
    sampling = Sampling.parse({"kind": kind, "space": space, "seed": seed})
    return SweepSpec.parse(
        {
            "sampling": sampling,
            "primary_metric_name": "score",
            "primary_metric_goal": "maximize",
            "max_total_runs": total,
        }
    )


def _done(number: int, asked: sweep_optuna.Asked, score: float) -> TrialInfo:
    return TrialInfo(
        number, asked.params, asked.internal, asked.system_attrs, "completed", "r", score
    )


def _sweep(spec: SweepSpec, n: int) -> list[dict[str, Any]]:
    """Draw ``n`` trials one after another, each finishing with a score from its values."""
    trials: list[TrialInfo] = []
    for number in range(n):
        asked = sweep_optuna.ask(spec, trials, {}, number)
        score = -sum(float(v) for v in asked.params.values() if isinstance(v, int | float))
        trials.append(
            TrialInfo(
                number, asked.params, asked.internal, asked.system_attrs, "completed", "r", score
            )
        )
    return [t.params for t in trials]


@pytest.mark.parametrize("kind", ["random", "bayesian"])
def test_a_seeded_sweep_draws_the_same_values_again(kind: str) -> None:
    first = _sweep(_spec(kind, 7), 12)
    assert _sweep(_spec(kind, 7), 12) == first
    assert _sweep(_spec(kind, 8), 12) != first
    assert len({tuple(p.values()) for p in first}) == 12


@pytest.mark.parametrize("kind", ["random", "bayesian"])
def test_values_follow_their_expressions(kind: str) -> None:
    for p in _sweep(_spec(kind, 1), 12):
        assert math.exp(-6) <= p["lr"] <= math.exp(-1)
        assert isinstance(p["units"], int) and p["units"] % 8 == 0 and 8 <= p["units"] <= 64
        assert p["layers"] in range(4)
        assert p["act"] in ("relu", "tanh")
        assert 0 <= p["dropout"] <= 0.5
        assert isinstance(p["shift"], float)


def test_the_normal_family_is_drawn_from_its_distribution() -> None:
    space = {
        "a": normal(10, 2),
        "b": lognormal(0, 0.5),
        "c": qnormal(0, 10, 5),
        "d": qloguniform(0, 3, 0.5),
    }
    spec = _spec("random", 3, space, total=400)
    # random draws depend on the trial's number only, not on the trials before it
    draws = [sweep_optuna.ask(spec, [], {}, number).params for number in range(400)]
    a = [p["a"] for p in draws]
    assert abs(statistics.mean(a) - 10) < 0.4 and abs(statistics.stdev(a) - 2) < 0.4
    assert all(p["b"] > 0 for p in draws)
    assert statistics.median(math.log(p["b"]) for p in draws) == pytest.approx(0, abs=0.1)
    assert all(p["c"] % 5 == 0 for p in draws)
    assert all(round(p["d"] / 0.5, 9).is_integer() and p["d"] <= math.exp(3) + 0.5 for p in draws)


def test_a_grid_enumerates_every_combination_once() -> None:
    space = {"n": choice(1, 2, 3), "act": choice("relu", "tanh")}
    spec = _spec("grid", 4, space, total=100)
    assert spec.max_total_runs == 6
    drawn = _sweep(spec, 6)
    assert sorted((p["n"], p["act"]) for p in drawn) == sorted(
        itertools.product([1, 2, 3], ["relu", "tanh"])
    )
    assert _sweep(spec, 6) == drawn  # the same order again


def test_tpe_moves_towards_good_values() -> None:
    """After its random start, TPE draws near the best region more often than chance."""
    spec = _spec("bayesian", 11, {"x": uniform(0, 1)}, total=40)
    trials: list[TrialInfo] = []
    for number in range(40):
        asked = sweep_optuna.ask(spec, trials, {}, number)
        score = -abs(asked.params["x"] - 0.8)
        trials.append(
            TrialInfo(
                number, asked.params, asked.internal, asked.system_attrs, "completed", "r", score
            )
        )
    late = [t.params["x"] for t in trials[20:]]
    near = sum(1 for x in late if abs(x - 0.8) < 0.1)
    assert near >= 10  # chance would put 4 of 20 there
