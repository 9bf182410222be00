"""Each early-termination policy stops a clearly bad trial, and says with which numbers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from cumulo.core.errors import InvalidInput
from cumulo.core.sweeps import Policy, Sampling, SweepSpec, TrialInfo, uniform
from cumulo.services import sweep_optuna


def _spec(policy: dict[str, Any], goal: str = "maximize") -> SweepSpec:
    return SweepSpec.parse(
        {
            "sampling": Sampling.parse(
                {"kind": "random", "space": {"x": uniform(0, 1)}, "seed": 1}
            ),
            "policy": Policy.parse(policy),
            "primary_metric_name": "acc",
            "primary_metric_goal": goal,
            "max_total_runs": 10,
        }
    )


def _trials(states: list[str]) -> list[TrialInfo]:
    return [
        TrialInfo(
            n, {"x": 0.5}, {"x": 0.5}, {}, state, f"run{n}", 0.9 if state == "completed" else None
        )
        for n, state in enumerate(states)
    ]


GOOD = {0: 0.5, 1: 0.7, 2: 0.8, 3: 0.9}
BAD = {0: 0.1, 1: 0.1, 2: 0.12, 3: 0.1}


def _verdict(policy: dict[str, Any], goal: str = "maximize", bad: dict[int, float] = BAD) -> Any:
    spec = _spec(policy, goal)
    trials = _trials(["completed", "completed", "submitted", "submitted"])
    histories = {0: GOOD, 1: GOOD, 2: {0: 0.5, 1: 0.7}, 3: bad}
    good = sweep_optuna.evaluate(spec, trials, histories, 2, [0, 1])
    assert good.stop is None  # the trial doing as well as the others goes on
    return sweep_optuna.evaluate(spec, trials, histories, 3, sorted(bad)).stop


def test_bandit_stops_a_trial_outside_the_slack_of_the_best() -> None:
    verdict = _verdict({"kind": "bandit", "slack_factor": 0.2})
    assert verdict == {"step": 0, "value": 0.1, "best": 0.5, "limit": 0.5 / 1.2}
    amount = _verdict({"kind": "bandit", "slack_amount": 0.1, "delay_evaluation": 2})
    assert amount is not None and amount["step"] == 2 and amount["limit"] == 0.8 - 0.1


def test_bandit_when_minimizing() -> None:
    losses = {0: 5.0, 1: 4.0, 2: 4.0, 3: 4.0}
    verdict = _verdict({"kind": "bandit", "slack_factor": 0.5}, goal="minimize", bad=losses)
    # the others' 0.5 at step 0 makes anything above 0.75 fall outside the slack
    assert verdict is not None and verdict["limit"] == 0.75 and verdict["value"] == 5.0


def test_median_stopping_stops_a_trial_below_the_median() -> None:
    verdict = _verdict({"kind": "median_stopping", "delay_evaluation": 1})
    assert verdict is not None
    assert verdict["step"] == 1 and verdict["median"] == 0.7 and verdict["best_value"] == 0.1


def test_truncation_selection_stops_the_worst_trials() -> None:
    verdict = _verdict({"kind": "truncation_selection", "truncation_percentage": 20})
    assert verdict is not None and verdict["step"] == 0 and verdict["cutoff"] == 0.5


def test_the_evaluation_interval_and_delay_are_honoured() -> None:
    spec = _spec(
        {"kind": "bandit", "slack_factor": 0.2, "evaluation_interval": 2, "delay_evaluation": 1}
    )
    trials = _trials(["completed", "submitted"])
    histories = {0: GOOD, 1: {0: 0.1, 1: 0.7, 2: 0.8}}
    # step 0 is before the delay; step 1 is due and fine; step 2 is not due
    assert sweep_optuna.evaluate(spec, trials, histories, 1, [0, 1, 2]).stop is None
    histories[1][3] = 0.1
    assert sweep_optuna.evaluate(spec, trials, histories, 1, [3]).stop is not None


def test_hyperband_stops_a_trial_behind_its_bracket_at_a_rung() -> None:
    # max_resource 9, reduction factor 3: rungs at steps 1, 3 and 9; trials 0-4 share bracket 0
    spec = _spec({"kind": "hyperband", "max_resource": 9, "reduction_factor": 3})
    trials = _trials(["submitted", "submitted", "submitted"])
    good = {0: 0.5, 1: 0.7, 2: 0.8, 3: 0.9}
    histories = {0: good, 1: dict(good), 2: {0: 0.1, 1: 0.1, 2: 0.12, 3: 0.1}}
    first = sweep_optuna.evaluate(spec, trials, histories, 0, sorted(good))
    assert first.stop is None  # the first to reach a rung goes on
    assert first.system_attrs == {"completed_rung_0": 0.7, "completed_rung_1": 0.9}
    trials[0] = replace(trials[0], system_attrs=first.system_attrs)
    second = sweep_optuna.evaluate(spec, trials, histories, 1, sorted(good))
    assert second.stop is None  # as good as the best: among the top third
    trials[1] = replace(trials[1], system_attrs=second.system_attrs)
    bad = sweep_optuna.evaluate(spec, trials, histories, 2, [0, 1, 2, 3])
    assert bad.stop == {
        "step": 1,
        "bracket": 0,
        "rung": 0,
        "value": 0.1,
        "cutoff": 0.7,
        "trials_at_rung": 3,
    }
    assert bad.system_attrs == {"completed_rung_0": 0.1}


def test_hyperband_needs_its_resources() -> None:
    with pytest.raises(InvalidInput, match="max_resource must be a whole number"):
        Policy.parse({"kind": "hyperband"})
    with pytest.raises(InvalidInput, match="above min_resource"):
        Policy.parse({"kind": "hyperband", "max_resource": 2, "min_resource": 2})
    with pytest.raises(InvalidInput, match="reduction_factor"):
        Policy.parse({"kind": "hyperband", "max_resource": 9, "reduction_factor": 1})
