"""Sweep specs: expressions, sampling, policies and limits are checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cumulo import (
    BanditPolicy,
    BayesianParameterSampling,
    GridParameterSampling,
    HyperDriveConfig,
    InvalidInput,
    MedianStoppingPolicy,
    PrimaryMetricGoal,
    RandomParameterSampling,
    ScriptRunConfig,
    TruncationSelectionPolicy,
    choice,
    loguniform,
    normal,
    quniform,
    randint,
    uniform,
)
from cumulo.core.sweeps import SweepSpec


def _config(tmp_path: Path, **kwargs: object) -> HyperDriveConfig:
    args: dict[str, object] = {
        "run_config": ScriptRunConfig(tmp_path, "train.py"),
        "hyperparameter_sampling": RandomParameterSampling({"lr": uniform(0, 1)}),
        "primary_metric_name": "accuracy",
    }
    args.update(kwargs)
    return HyperDriveConfig(**args)  # type: ignore[arg-type]


def test_expressions_check_their_arguments() -> None:
    assert repr(choice([1, 2, 3])) == repr(choice(1, 2, 3)) == "choice(1, 2, 3)"
    assert choice(range(3)).args == ((0, 1, 2),)
    with pytest.raises(InvalidInput, match="at least one value"):
        choice()
    with pytest.raises(InvalidInput, match="twice"):
        choice(1, 1)
    with pytest.raises(InvalidInput, match="min_value < max_value"):
        uniform(1, 0)
    with pytest.raises(InvalidInput, match="q > 0"):
        quniform(0, 1, 0)
    with pytest.raises(InvalidInput, match="sigma > 0"):
        normal(0, -1)
    with pytest.raises(InvalidInput, match="whole upper"):
        randint(0)
    with pytest.raises(InvalidInput, match="exponents"):
        loguniform(1e-5, 1e3)
    with pytest.raises(InvalidInput, match="finite number"):
        uniform(0, float("inf"))


def test_an_empty_space_is_refused() -> None:
    with pytest.raises(InvalidInput, match="search space is empty"):
        RandomParameterSampling({})


def test_grid_sampling_refuses_a_continuous_range() -> None:
    with pytest.raises(InvalidInput, match=r"choice\(\) values only; lr = uniform\(0, 1\)"):
        GridParameterSampling({"lr": uniform(0, 1), "n": choice(1, 2)})
    grid = GridParameterSampling({"n": choice(1, 2), "act": choice("relu", "tanh", "gelu")})
    assert grid.grid_size == 6


def test_a_grid_runs_each_point_once_at_most(tmp_path: Path) -> None:
    grid = GridParameterSampling({"n": choice(1, 2, 3)})
    assert (
        _config(tmp_path, hyperparameter_sampling=grid, max_total_runs=20).spec.max_total_runs == 3
    )


def test_an_unknown_goal_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="Unknown primary_metric_goal 'biggest'"):
        _config(tmp_path, primary_metric_goal="biggest")
    assert (
        _config(tmp_path, primary_metric_goal="minimize").spec.primary_metric_goal
        is PrimaryMetricGoal.MINIMIZE
    )


def test_limits_and_metric_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="primary_metric_name"):
        _config(tmp_path, primary_metric_name="")
    with pytest.raises(InvalidInput, match="max_total_runs"):
        _config(tmp_path, max_total_runs=0)
    with pytest.raises(InvalidInput, match="max_concurrent_runs"):
        _config(tmp_path, max_concurrent_runs=0)
    with pytest.raises(InvalidInput, match="max_duration_minutes"):
        _config(tmp_path, max_duration_minutes=-1)
    with pytest.raises(InvalidInput, match="ScriptRunConfig"):
        _config(tmp_path, run_config="train.py")
    spec = _config(tmp_path, max_total_runs=3, max_concurrent_runs=10).spec
    assert spec.max_concurrent_runs == 3  # never more at once than in all


def test_policies_check_their_fields() -> None:
    with pytest.raises(InvalidInput, match="one of slack_factor or slack_amount"):
        BanditPolicy(slack_factor=0.1, slack_amount=0.2)
    with pytest.raises(InvalidInput, match="one of slack_factor or slack_amount"):
        BanditPolicy()
    with pytest.raises(InvalidInput, match="evaluation_interval"):
        MedianStoppingPolicy(evaluation_interval=0)
    with pytest.raises(InvalidInput, match="truncation_percentage"):
        TruncationSelectionPolicy(truncation_percentage=100)
    assert BanditPolicy(slack_amount=0.2).label == "BanditPolicy"


def test_a_spec_travels_as_json_and_back(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        hyperparameter_sampling=BayesianParameterSampling(
            {"--lr": loguniform(-6, -1), "layers": choice(1, 2), "units": quniform(8, 64, 8)},
            seed=5,
        ),
        policy=TruncationSelectionPolicy(truncation_percentage=25, delay_evaluation=2),
        primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
    )
    again = SweepSpec.parse(config.spec.to_dict())
    assert again == config.spec
    assert list(again.sampling.space) == ["lr", "layers", "units"]  # "--lr" is the param "lr"
