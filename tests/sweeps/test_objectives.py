"""Multi-objective sweeps (a Pareto front) and warm starts from an earlier sweep's trials."""

from __future__ import annotations

from typing import Any

import pytest

from cumulo.core.errors import InvalidInput
from cumulo.core.sweeps import PrimaryMetricGoal, Sampling, SweepSpec, TrialInfo, choice, uniform
from cumulo.services import sweep_optuna

TWO = [("accuracy", "maximize"), ("latency_ms", "minimize")]


def _spec(kind: str = "random", total: int = 8, **extra: Any) -> SweepSpec:
    space = {"x": uniform(0, 1)} if kind != "grid" else {"x": choice(0.1, 0.5, 0.9)}
    return SweepSpec.parse(
        {
            "sampling": Sampling.parse({"kind": kind, "space": space, "seed": 3}),
            "max_total_runs": total,
            **extra,
        }
    )


def _done(number: int, x: float, values: tuple[float, ...]) -> TrialInfo:
    return TrialInfo(number, {"x": x}, {"x": x}, {}, "completed", f"r{number}", values[0], values)


def test_primary_metrics_make_a_multi_objective_spec() -> None:
    spec = _spec(primary_metrics=TWO)
    assert spec.multi_objective
    assert spec.objectives == (
        ("accuracy", PrimaryMetricGoal.MAXIMIZE),
        ("latency_ms", PrimaryMetricGoal.MINIMIZE),
    )
    assert (spec.primary_metric_name, spec.primary_metric_goal) == spec.objectives[0]
    assert SweepSpec.parse(spec.to_dict()) == spec
    as_mapping = _spec(primary_metrics={"accuracy": "maximize", "latency_ms": "MINIMIZE"})
    assert as_mapping.objectives == spec.objectives
    one = _spec(primary_metrics=[("accuracy", "maximize")])
    assert not one.multi_objective and one.primary_metric_name == "accuracy"


def test_bad_primary_metrics_are_refused() -> None:
    with pytest.raises(InvalidInput, match="BanditPolicy stops trials by one metric"):
        _spec(primary_metrics=TWO, policy={"kind": "bandit", "slack_factor": 0.1})
    with pytest.raises(InvalidInput, match="names a metric twice"):
        _spec(primary_metrics=[("a", "maximize"), ("a", "minimize")])
    with pytest.raises(InvalidInput, match="not a \\(metric, goal\\) pair"):
        _spec(primary_metrics=["accuracy"])
    with pytest.raises(InvalidInput, match="Unknown primary_metric_goal 'up'"):
        _spec(primary_metrics=[("a", "up"), ("b", "minimize")])
    with pytest.raises(InvalidInput, match="is not the first of primary_metrics"):
        _spec(primary_metrics=TWO, primary_metric_name="latency_ms")


def test_the_pareto_front_holds_the_trials_nothing_beats_on_every_metric() -> None:
    spec = _spec(primary_metrics=TWO)
    trials = [
        _done(0, 0.1, (0.70, 10.0)),  # fast
        _done(1, 0.2, (0.90, 50.0)),  # accurate
        _done(2, 0.3, (0.60, 30.0)),  # beaten by 0: less accurate and slower
        _done(3, 0.4, (0.80, 20.0)),  # in between
        TrialInfo(4, {"x": 0.5}, {"x": 0.5}, {}, "submitted", "r4"),
        TrialInfo(5, {"x": 0.6}, {"x": 0.6}, {}, "failed", "r5"),
    ]
    assert sweep_optuna.pareto_front(spec, trials) == [0, 1, 3]
    # the sampler draws the next trial of a multi-objective study like any other
    for kind in ("random", "bayesian"):
        asked = sweep_optuna.ask(_spec(kind, primary_metrics=TWO), trials, {}, 6)
        assert 0 <= asked.params["x"] <= 1


def test_an_earlier_sweep_warm_starts_bayesian_sampling() -> None:
    spec = _spec("bayesian", total=8, primary_metric_name="score", primary_metric_goal="maximize")
    earlier = _spec("random", total=30, primary_metric_name="score", primary_metric_goal="maximize")
    xs = [i / 30 for i in range(30)]
    done = [
        TrialInfo(n, {"x": x}, {"x": x}, {}, "completed", f"r{n}", -abs(x - 0.8))
        for n, x in enumerate(xs)
    ]
    done.append(TrialInfo(30, {"x": 0.5}, {"x": 0.5}, {}, "failed", "r30"))  # left out
    warm = sweep_optuna.warm_trials(spec, earlier, done)
    assert len(warm) == 30 and warm[0].values == [-0.8]

    def draw(start: list[sweep_optuna.WarmTrial]) -> list[float]:
        return [sweep_optuna.ask(spec, [], {}, n, start).params["x"] for n in range(8)]

    cold, hot = draw([]), draw(warm)
    assert draw(warm) == hot  # seeded: the same again
    # the sweep's first trials are drawn near the earlier sweep's best, not at random
    assert sum(abs(x - 0.8) < 0.1 for x in hot) >= 6
    assert sum(abs(x - 0.8) < 0.1 for x in cold) < 6


def test_a_warm_start_needs_the_same_metrics_and_parameters() -> None:
    spec = _spec("bayesian", primary_metric_name="score", primary_metric_goal="maximize")
    other_metric = _spec("random", primary_metric_name="loss", primary_metric_goal="minimize")
    with pytest.raises(InvalidInput, match="earlier sweep optimized loss; this one score"):
        sweep_optuna.warm_trials(spec, other_metric, [])
    other_space = SweepSpec.parse(
        {
            "sampling": Sampling.parse({"kind": "random", "space": {"y": uniform(0, 1)}}),
            "primary_metric_name": "score",
            "primary_metric_goal": "maximize",
        }
    )
    with pytest.raises(InvalidInput, match="earlier sweep searched y; this one x"):
        sweep_optuna.warm_trials(spec, other_space, [])
    # values outside this sweep's range are left out
    wider = [TrialInfo(0, {"x": 2.0}, {"x": 2.0}, {}, "completed", "r", 1.0)]
    assert sweep_optuna.warm_trials(spec, spec, wider) == []
    with pytest.raises(InvalidInput, match="resume_from warm-starts Bayesian sampling"):
        _spec(
            "random", primary_metric_name="score", primary_metric_goal="maximize", resume_from="r"
        )
