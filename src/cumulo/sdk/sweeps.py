"""Hyperparameter sweeps: ``HyperDriveConfig``, sampling and early termination.

A submitted sweep's parent run is a ``SweepRun`` (``cumulo.sdk.workspace``).

Each trial runs the ``ScriptRunConfig``'s script as a job of its own (a child
run of the sweep) on its compute target, with its hyperparameters added to
the script's arguments (``--lr 0.01``) and logged as params. The script logs
the primary metric with ``run.log(...)``; the last value it logs is the
trial's result, and the values it logs along the way feed the policy.

Example::

    from cumulo import (BanditPolicy, Experiment, HyperDriveConfig, PrimaryMetricGoal,
                        RandomParameterSampling, ScriptRunConfig, choice, loguniform)

    sampling = RandomParameterSampling(
        {"lr": loguniform(-6, -1), "batch_size": choice(16, 32, 64)}, seed=7
    )
    config = HyperDriveConfig(
        run_config=ScriptRunConfig("src", "train.py", compute_target="cpu-pool"),
        hyperparameter_sampling=sampling,
        policy=BanditPolicy(slack_factor=0.1, evaluation_interval=1),
        primary_metric_name="accuracy",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=20,
        max_concurrent_runs=4,
    )
    sweep = Experiment(ws, "tune").submit(config)
    sweep.wait_for_completion()
    best = sweep.get_best_run_by_primary_metric()
"""

from __future__ import annotations

import getpass
from typing import Any

from cumulo.core.entities import RunInfo
from cumulo.core.errors import InvalidInput
from cumulo.core.sweeps import (
    ParameterExpression,
    Policy,
    PrimaryMetricGoal,
    Sampling,
    SweepSpec,
    choice,
    lognormal,
    loguniform,
    normal,
    qlognormal,
    qloguniform,
    qnormal,
    quniform,
    randint,
    uniform,
)
from cumulo.sdk import v1
from cumulo.sdk.jobs import ScriptRunConfig, prepare_job_config
from cumulo.sdk.run import WorkspaceRef

__all__ = [
    "BanditPolicy",
    "BayesianParameterSampling",
    "GridParameterSampling",
    "HyperDriveConfig",
    "HyperbandPolicy",
    "MedianStoppingPolicy",
    "ParameterExpression",
    "PrimaryMetricGoal",
    "RandomParameterSampling",
    "TruncationSelectionPolicy",
    "choice",
    "lognormal",
    "loguniform",
    "normal",
    "qlognormal",
    "qloguniform",
    "qnormal",
    "quniform",
    "randint",
    "uniform",
]


# ------------------------------------------------------------------- sampling
class _Sampling(Sampling):
    _kind = ""

    def __init__(self, parameter_space: dict[str, Any], seed: int | None = None) -> None:
        parsed = Sampling.parse({"kind": self._kind, "space": parameter_space, "seed": seed})
        super().__init__(parsed.kind, parsed.space, parsed.seed)

    def __repr__(self) -> str:
        space = ", ".join(f"{k!r}: {v!r}" for k, v in self.space.items())
        return f"{type(self).__name__}({{{space}}}, seed={self.seed})"


class RandomParameterSampling(_Sampling):
    """Each trial draws every parameter at random; the same ``seed`` draws the same values.

    Example: ``RandomParameterSampling({"lr": loguniform(-6, -1)}, seed=1)``
    """

    _kind = "random"


class GridParameterSampling(_Sampling):
    """Every combination of ``choice()`` values once (ranges are refused).

    A sweep runs at most as many trials as the grid has points.
    """

    _kind = "grid"

    def __init__(self, parameter_space: dict[str, Any], seed: int | None = None) -> None:
        super().__init__(parameter_space, seed)


class BayesianParameterSampling(_Sampling):
    """Trials after the first few are drawn where earlier results were good (Optuna's TPE)."""

    _kind = "bayesian"


# ------------------------------------------------------------------- policies
class BanditPolicy(Policy):
    """Stop a trial whose metric falls outside the slack of the best trial at the same step.

    ``slack_factor``: maximizing, stop below ``best / (1 + slack_factor)``;
    ``slack_amount``: below ``best - slack_amount`` (the other way round when minimizing).
    """

    def __init__(
        self,
        evaluation_interval: int = 1,
        slack_factor: float | None = None,
        slack_amount: float | None = None,
        delay_evaluation: int = 0,
    ) -> None:
        parsed = Policy.parse(
            {
                "kind": "bandit",
                "evaluation_interval": evaluation_interval,
                "slack_factor": slack_factor,
                "slack_amount": slack_amount,
                "delay_evaluation": delay_evaluation,
            }
        )
        assert parsed is not None
        super().__init__(**vars(parsed))


class MedianStoppingPolicy(Policy):
    """Stop a trial whose best value so far is worse than the median of finished trials'
    values at the same step."""

    def __init__(self, evaluation_interval: int = 1, delay_evaluation: int = 5) -> None:
        parsed = Policy.parse(
            {
                "kind": "median_stopping",
                "evaluation_interval": evaluation_interval,
                "delay_evaluation": delay_evaluation,
            }
        )
        assert parsed is not None
        super().__init__(**vars(parsed))


class TruncationSelectionPolicy(Policy):
    """Stop a trial in the worst ``truncation_percentage`` percent of finished trials'
    values at the same step."""

    def __init__(
        self,
        truncation_percentage: float,
        evaluation_interval: int = 1,
        delay_evaluation: int = 0,
    ) -> None:
        parsed = Policy.parse(
            {
                "kind": "truncation_selection",
                "truncation_percentage": truncation_percentage,
                "evaluation_interval": evaluation_interval,
                "delay_evaluation": delay_evaluation,
            }
        )
        assert parsed is not None
        super().__init__(**vars(parsed))


class HyperbandPolicy(Policy):
    """Successive halving in several brackets (Optuna's ``HyperbandPruner``).

    A trial reaching step ``min_resource * reduction_factor ** k`` (a *rung*)
    goes on only if its value there is among the best ``1 / reduction_factor``
    of the values its bracket's trials had at that rung. ``max_resource`` is the
    most steps a trial reports; it sets how many brackets there are.

    Example: ``HyperbandPolicy(max_resource=27, reduction_factor=3)``
    """

    def __init__(
        self,
        max_resource: int,
        min_resource: int = 1,
        reduction_factor: int = 3,
        evaluation_interval: int = 1,
        delay_evaluation: int = 0,
    ) -> None:
        parsed = Policy.parse(
            {
                "kind": "hyperband",
                "max_resource": max_resource,
                "min_resource": min_resource,
                "reduction_factor": reduction_factor,
                "evaluation_interval": evaluation_interval,
                "delay_evaluation": delay_evaluation,
            }
        )
        assert parsed is not None
        super().__init__(**vars(parsed))


# --------------------------------------------------------------------- config
class HyperDriveConfig:
    """A sweep: the script to run, how to pick its hyperparameters, what to optimize.

    The spec is checked here, so a bad one fails before anything is submitted.
    ``max_concurrent_runs=None`` runs every trial at once.

    ``primary_metrics=[("accuracy", PrimaryMetricGoal.MAXIMIZE), ("latency_ms",
    PrimaryMetricGoal.MINIMIZE)]`` (instead of ``primary_metric_name``) makes a
    multi-objective sweep, whose result is a Pareto front
    (``SweepRun.get_pareto_front()``); it takes no early-termination policy.

    ``resume_from=<an earlier SweepRun or its run id>`` warm-starts Bayesian
    sampling with that sweep's finished trials (same parameters and metrics).
    """

    @v1.arguments(
        "HyperDriveConfig",
        {
            "estimator": "run_config=ScriptRunConfig(...)",
            "pipeline": "run_config=ScriptRunConfig(...) (a sweep's trial is one job)",
        },
    )
    def __init__(
        self,
        run_config: ScriptRunConfig,
        hyperparameter_sampling: Sampling,
        policy: Policy | None = None,
        primary_metric_name: str = "",
        primary_metric_goal: PrimaryMetricGoal | str = PrimaryMetricGoal.MAXIMIZE,
        max_total_runs: int = 20,
        max_concurrent_runs: int | None = 4,
        max_duration_minutes: float | None = None,
        primary_metrics: list[tuple[str, PrimaryMetricGoal | str]] | None = None,
        resume_from: Any = None,
    ) -> None:
        if not isinstance(run_config, ScriptRunConfig):
            raise InvalidInput("HyperDriveConfig's run_config must be a ScriptRunConfig.")
        self.run_config = run_config
        self.spec = SweepSpec.parse(
            {
                "sampling": Sampling.parse(hyperparameter_sampling),
                "policy": Policy.parse(policy),
                "primary_metric_name": primary_metric_name,
                "primary_metric_goal": primary_metric_goal,
                "max_total_runs": max_total_runs,
                "max_concurrent_runs": max_concurrent_runs,
                "max_duration_minutes": max_duration_minutes,
                "primary_metrics": primary_metrics,
                # a run (SweepRun) or its id
                "resume_from": getattr(resume_from, "id", resume_from),
            }
        )

    @property
    def hyperparameter_sampling(self) -> Sampling:
        return self.spec.sampling

    @property
    def policy(self) -> Policy | None:
        return self.spec.policy

    def __repr__(self) -> str:
        s = self.spec
        return (
            f"HyperDriveConfig(script={self.run_config.script!r}, sampling={s.sampling.kind}, "
            f"metrics={', '.join(f'{n!r} {g.value}' for n, g in s.objectives)}, "
            f"max_total_runs={s.max_total_runs}, max_concurrent_runs={s.max_concurrent_runs})"
        )


def submit(
    ws: WorkspaceRef,
    experiment_id: int,
    config: HyperDriveConfig,
    tags: dict[str, str] | None = None,
) -> RunInfo:
    """Snapshot the code once and submit the sweep; returns its parent run at once."""
    ws.transport.host_jobs()
    job_config = prepare_job_config(ws, config.run_config)
    info = ws.transport.sweeps.submit_sweep(
        ws.name,
        experiment_id,
        config.spec.to_dict(),
        job_config,
        tags=tags,
        display_name=config.run_config.display_name,
        user=_user(),
    )
    return info


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""
