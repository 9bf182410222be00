"""Hyperparameter sweeps: ``HyperDriveConfig``, sampling, early termination, ``SweepRun``.

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

import builtins
import getpass
from typing import TYPE_CHECKING, Any

from cumulo.core.errors import InvalidInput
from cumulo.core.status import RunStatus
from cumulo.core.sweeps import (
    TRIAL_TAG,
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
from cumulo.sdk.jobs import ScriptRunConfig, prepare_job_config
from cumulo.sdk.run import Run

if TYPE_CHECKING:
    from cumulo.sdk.experiment import Experiment
    from cumulo.sdk.workspace import Workspace

__all__ = [
    "BanditPolicy",
    "BayesianParameterSampling",
    "GridParameterSampling",
    "HyperDriveConfig",
    "MedianStoppingPolicy",
    "ParameterExpression",
    "PrimaryMetricGoal",
    "RandomParameterSampling",
    "SweepRun",
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


# --------------------------------------------------------------------- config
class HyperDriveConfig:
    """A sweep: the script to run, how to pick its hyperparameters, what to optimize.

    The spec is checked here, so a bad one fails before anything is submitted.
    ``max_concurrent_runs=None`` runs every trial at once.
    """

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
            f"metric={s.primary_metric_name!r} {s.primary_metric_goal.value}, "
            f"max_total_runs={s.max_total_runs}, max_concurrent_runs={s.max_concurrent_runs})"
        )


def submit(
    experiment: Experiment, config: HyperDriveConfig, tags: dict[str, str] | None = None
) -> SweepRun:
    """Snapshot the code once and submit the sweep; returns its parent run at once."""
    ws = experiment.workspace
    ws.transport.host_jobs()
    job_config = prepare_job_config(ws, config.run_config)
    info = ws.transport.sweeps.submit_sweep(
        ws.name,
        experiment.id,
        config.spec.to_dict(),
        job_config,
        tags=tags,
        display_name=config.run_config.display_name,
        user=_user(),
    )
    return SweepRun(ws, info)


# ------------------------------------------------------------------------ run
class SweepRun(Run):
    """A sweep's parent run: its trials are its children.

    Example::

        sweep = SweepRun.get(ws, run_id)
        for row in sweep.get_children_sorted_by_primary_metric(top=5):
            print(row["number"], row["primary_metric"], row["hyperparameters"])
    """

    @staticmethod
    def get(workspace: Workspace, run_id: str) -> SweepRun:
        info = workspace.transport.tracking.find_run(workspace.name, run_id)
        workspace.transport.sweeps.get_sweep(workspace.name, info.id)  # NotFound if no sweep
        return SweepRun(workspace, info)

    def get_sweep(self) -> dict[str, Any]:
        """The spec, state and trials (number, params, state, run id, value) as stored."""
        return self.workspace.transport.sweeps.get_sweep(self.workspace.name, self.id)

    @property
    def primary_metric_name(self) -> str:
        return str(self.get_sweep()["spec"]["primary_metric_name"])

    @property
    def primary_metric_goal(self) -> PrimaryMetricGoal:
        return PrimaryMetricGoal.parse(self.get_sweep()["spec"]["primary_metric_goal"])

    def cancel(self) -> None:
        """Cancel the sweep: its running trials are canceled, then it ends ``Canceled``."""
        self._info = self.workspace.transport.sweeps.cancel_sweep(self.workspace.name, self.id)

    def get_hyperparameters(self) -> dict[str, dict[str, str]]:
        """Each trial's hyperparameters by its run id."""
        return {child.id: child.get_params() for child in self.get_children()}

    def get_children_sorted_by_primary_metric(
        self,
        top: int = 0,
        reverse: bool = False,
        discard_no_metric: bool = False,
    ) -> builtins.list[dict[str, Any]]:
        """Trials best first (``reverse``: worst first), ``top`` of them (0: all).

        Each is ``{"run_id", "number", "status", "hyperparameters", "primary_metric"}``;
        trials that never logged the metric come last (or not at all with
        ``discard_no_metric``).
        """
        spec = self.get_sweep()["spec"]
        name = spec["primary_metric_name"]
        goal = PrimaryMetricGoal.parse(spec["primary_metric_goal"])
        rows: builtins.list[dict[str, Any]] = []
        for child in self.get_children():
            metric = child.info.metrics.get(name)
            if metric is None and discard_no_metric:
                continue
            rows.append(
                {
                    "run_id": child.id,
                    "number": int(child.info.tags.get(TRIAL_TAG, "-1")),
                    "status": child.info.status,
                    "hyperparameters": dict(child.info.params),
                    "primary_metric": metric.value if metric is not None else None,
                }
            )
        sign = -1.0 if goal is PrimaryMetricGoal.MAXIMIZE else 1.0
        scored = sorted(
            (r for r in rows if r["primary_metric"] is not None),
            key=lambda r: (sign * r["primary_metric"], r["number"]),
        )
        if reverse:
            scored.reverse()
        ordered = scored + [r for r in rows if r["primary_metric"] is None]
        return ordered[:top] if top else ordered

    def get_best_run_by_primary_metric(
        self, include_failed: bool = True, include_canceled: bool = True
    ) -> Run | None:
        """The trial with the best primary metric (its last logged value), or None."""
        skip = set()
        if not include_failed:
            skip.add(RunStatus.FAILED.value)
        if not include_canceled:
            skip.add(RunStatus.CANCELED.value)
        for row in self.get_children_sorted_by_primary_metric(discard_no_metric=True):
            if row["status"] not in skip:
                return self.workspace.get_run(row["run_id"])
        return None

    def __repr__(self) -> str:
        return (
            f"SweepRun(experiment={self._info.experiment_name!r}, number={self.number}, "
            f"id={self.id!r}, status={self._info.status!r})"
        )


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""
