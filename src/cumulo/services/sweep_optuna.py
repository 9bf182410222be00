"""Optuna under the sweeps: the spec's distributions, samplers and pruners.

Nothing here keeps state between calls: the study is rebuilt from the stored
trials every time (their sampler values, system attributes, results and
metric histories), so a sweep carries on the same after a restart.

- Distributions: ``choice`` is categorical, ``randint`` an int range, the
  uniform family float ranges (``loguniform`` on a log scale). Optuna has no
  unbounded distributions: the normal family is sampled as a quantile in
  (0, 1) and mapped through the normal's inverse CDF, which keeps random
  draws exactly normal and lets TPE model the quantile.
- Samplers: ``RandomSampler`` and ``TPESampler`` seeded per trial number from
  the sweep's seed (the same trial gets the same draw whenever it is asked),
  and ``GridSampler`` with the sweep's seed (trial *n* takes grid point *n* of
  its seeded order).
- Pruners: ``MedianStoppingPolicy`` is Optuna's ``MedianPruner``,
  ``TruncationSelectionPolicy`` its ``PercentilePruner`` keeping the top
  ``100 - truncation_percentage`` percent, both against finished trials;
  ``HyperbandPolicy`` its ``HyperbandPruner`` (asynchronous successive
  halving in several brackets), whose rung values are trial system attributes
  the driver stores like the sampler's; ``BanditPolicy`` (which Optuna lacks)
  is a small ``BasePruner`` here that compares with the best value of any
  other trial at the same step.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.pruners import (
    BasePruner,
    HyperbandPruner,
    MedianPruner,
    NopPruner,
    PercentilePruner,
)
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState, create_trial

from cumulo.core.errors import InvalidInput
from cumulo.core.sweeps import ParameterExpression, Policy, PrimaryMetricGoal, SweepSpec, TrialInfo

optuna.logging.set_verbosity(optuna.logging.WARNING)

# A fixed name: Hyperband puts a trial in a bracket by hashing it with its number.
STUDY_NAME = "cumulo-sweep"
_EDGE = 1e-9  # quantiles stay inside (0, 1), where the inverse CDF is finite
_RUNG = "completed_rung_"  # Optuna's successive-halving attribute, one per rung reached
_NORMAL = ("normal", "qnormal", "lognormal", "qlognormal")


# ------------------------------------------------------------- distributions
def distribution(expr: ParameterExpression) -> BaseDistribution:
    kind, args = expr.kind, expr.args
    if kind == "choice":
        return CategoricalDistribution(args[0])
    if kind == "randint":
        return IntDistribution(0, int(args[0]) - 1)
    if kind in ("uniform", "quniform"):
        return FloatDistribution(float(args[0]), float(args[1]))
    if kind in ("loguniform", "qloguniform"):
        return FloatDistribution(math.exp(args[0]), math.exp(args[1]), log=True)
    return FloatDistribution(_EDGE, 1 - _EDGE)


def script_value(expr: ParameterExpression, raw: Any) -> Any:
    """The value the script gets for the sampler's value ``raw``."""
    kind = expr.kind
    if kind == "choice":
        return raw
    if kind == "randint":
        return int(raw)
    value = float(raw)
    if kind in _NORMAL:
        value = NormalDist(float(expr.args[0]), float(expr.args[1])).inv_cdf(value)
        if kind in ("lognormal", "qlognormal"):
            value = math.exp(value)
    return expr.quantize(value)


def _sampler(spec: SweepSpec, number: int) -> BaseSampler:
    sampling = spec.sampling
    seed = sampling.seed or 0
    if sampling.kind == "grid":
        return GridSampler({n: list(e.args[0]) for n, e in sampling.space.items()}, seed=seed)
    per_trial = (seed * 1_000_003 + number) % 2**32
    if sampling.kind == "bayesian":
        # Optuna's default of 10 random trials first would leave small sweeps all random.
        startup = max(2, min(10, spec.max_total_runs // 4))
        return TPESampler(seed=per_trial, n_startup_trials=startup)
    return RandomSampler(seed=per_trial)


# -------------------------------------------------------------------- study
def _direction(goal: PrimaryMetricGoal) -> StudyDirection:
    if goal is PrimaryMetricGoal.MAXIMIZE:
        return StudyDirection.MAXIMIZE
    return StudyDirection.MINIMIZE


def _study(
    spec: SweepSpec,
    trials: list[TrialInfo],
    histories: dict[int, dict[int, float]],
    number: int,
    pruner: BasePruner | None = None,
    warm: list[WarmTrial] | None = None,
) -> optuna.Study:
    study = optuna.create_study(
        study_name=STUDY_NAME,
        directions=[_direction(goal) for _, goal in spec.objectives],
        sampler=_sampler(spec, number),
        pruner=pruner or NopPruner(),
    )
    dists = {n: distribution(e) for n, e in spec.sampling.space.items()}
    # An earlier sweep's results first, as finished trials the sampler learns from.
    study.add_trials(
        [
            create_trial(
                state=TrialState.COMPLETE, values=w.values, params=w.internal, distributions=dists
            )
            for w in warm or []
        ]
    )
    multi = spec.multi_objective
    for t in trials:
        if t.state in ("claimed", "submitted"):
            state = TrialState.RUNNING
        elif t.state == "completed" and t.value is not None and (t.values or not multi):
            state = TrialState.COMPLETE
        elif t.state == "pruned":
            state = TrialState.PRUNED
        else:
            state = TrialState.FAIL
        done = state == TrialState.COMPLETE
        study.add_trial(
            create_trial(
                state=state,
                values=(list(t.values or ()) if multi else [t.value or 0.0]) if done else None,
                params=t.internal,
                distributions=dists,
                intermediate_values=histories.get(t.number, {}),
                system_attrs=t.system_attrs,
            )
        )
    return study


@dataclass(frozen=True)
class WarmTrial:
    """An earlier sweep's finished trial: the sampler's values and its result(s)."""

    internal: dict[str, Any]
    values: list[float]


def warm_trials(spec: SweepSpec, earlier: SweepSpec, trials: list[TrialInfo]) -> list[WarmTrial]:
    """The finished trials of the sweep ``earlier`` that fit ``spec``'s space and objectives.

    Raises ``InvalidInput`` when the two sweeps optimize different metrics or
    search different parameters: their results would mislead the sampler.
    """
    if [n for n, _ in earlier.objectives] != [n for n, _ in spec.objectives]:
        raise InvalidInput(
            "resume_from: the earlier sweep optimized "
            f"{', '.join(n for n, _ in earlier.objectives)}; this one "
            f"{', '.join(n for n, _ in spec.objectives)}."
        )
    if set(earlier.sampling.space) != set(spec.sampling.space):
        raise InvalidInput(
            f"resume_from: the earlier sweep searched {', '.join(sorted(earlier.sampling.space))}; "
            f"this one {', '.join(sorted(spec.sampling.space))}."
        )
    dists = {n: distribution(e) for n, e in spec.sampling.space.items()}
    out = []
    for t in trials:
        if t.state != "completed" or t.value is None:
            continue
        values = list(t.values) if earlier.multi_objective and t.values else [t.value]
        if len(values) != len(spec.objectives):
            continue
        fits = all(
            n in t.internal and _contains(dists[n], t.internal[n]) for n in spec.sampling.space
        )
        if fits:
            out.append(WarmTrial({n: t.internal[n] for n in spec.sampling.space}, values))
    return out


def _contains(dist: BaseDistribution, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def pareto_front(spec: SweepSpec, trials: list[TrialInfo]) -> list[int]:
    """The numbers of the trials no other finished trial beats on every objective."""
    study = _study(spec, trials, {}, 0)
    numbers = [t.number for t in trials]
    return sorted(numbers[t.number] for t in study.best_trials)


@dataclass(frozen=True)
class Asked:
    params: dict[str, Any]  # what the script gets
    internal: dict[str, Any]  # what the sampler drew
    system_attrs: dict[str, Any]


def ask(
    spec: SweepSpec,
    trials: list[TrialInfo],
    histories: dict[int, dict[int, float]],
    number: int,
    warm: list[WarmTrial] | None = None,
) -> Asked:
    """Trial ``number``'s hyperparameters, given the trials before it (and ``warm``: an
    earlier sweep's)."""
    study = _study(spec, trials, histories, number, warm=warm)
    dists = {n: distribution(e) for n, e in spec.sampling.space.items()}
    trial = study.ask(fixed_distributions=dists)
    frozen = study.trials[-1]
    internal = dict(trial.params)
    params = {n: script_value(e, internal[n]) for n, e in spec.sampling.space.items()}
    attrs = {k: v for k, v in frozen.system_attrs.items() if _plain(v)}
    return Asked(params, internal, attrs)


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


# ----------------------------------------------------------------- policies
class BanditPruner(BasePruner):
    """Stop a trial whose value at a step falls outside the slack of the best other trial's."""

    def __init__(self, policy: Policy, goal: PrimaryMetricGoal) -> None:
        self.policy = policy
        self.goal = goal

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.verdict(study, trial) is not None

    def verdict(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any] | None:
        step = trial.last_step
        if step is None:
            return None
        value = trial.intermediate_values[step]
        others = [
            t.intermediate_values[step]
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number and step in t.intermediate_values
        ]
        others = [v for v in others if math.isfinite(v)]
        if not others or not math.isfinite(value):
            return None
        maximize = self.goal is PrimaryMetricGoal.MAXIMIZE
        best = max(others) if maximize else min(others)
        p = self.policy
        if p.slack_factor is not None:
            limit = best / (1 + p.slack_factor) if maximize else best * (1 + p.slack_factor)
        else:
            slack = p.slack_amount or 0.0
            limit = best - slack if maximize else best + slack
        if (value < limit) if maximize else (value > limit):
            return {"step": step, "value": value, "best": best, "limit": limit}
        return None


def _pruner(spec: SweepSpec) -> BasePruner | None:
    p = spec.policy
    if p is None:
        return None
    if p.kind == "bandit":
        return BanditPruner(p, spec.primary_metric_goal)
    if p.kind == "hyperband":
        return HyperbandPruner(
            min_resource=p.min_resource or 1,
            max_resource=p.max_resource or 1,
            reduction_factor=p.reduction_factor or 3,
        )
    if p.kind == "median_stopping":
        return MedianPruner(
            n_startup_trials=1,
            n_warmup_steps=p.delay_evaluation,
            interval_steps=p.evaluation_interval,
        )
    return PercentilePruner(
        100.0 - (p.truncation_percentage or 0.0),
        n_startup_trials=1,
        n_warmup_steps=p.delay_evaluation,
        interval_steps=p.evaluation_interval,
    )


def _due(p: Policy, step: int) -> bool:
    return step >= p.delay_evaluation and (step - p.delay_evaluation) % p.evaluation_interval == 0


@dataclass(frozen=True)
class Evaluation:
    """A policy's look at one trial: why it stops (None: it goes on), and the
    trial's system attributes afterwards (Hyperband records its rungs there)."""

    stop: dict[str, Any] | None
    system_attrs: dict[str, Any]


def evaluate(
    spec: SweepSpec,
    trials: list[TrialInfo],
    histories: dict[int, dict[int, float]],
    number: int,
    steps: list[int],
) -> Evaluation:
    """Whether the policy stops trial ``number`` at one of its new ``steps``, and why."""
    index = next(i for i, t in enumerate(trials) if t.number == number)
    policy, pruner = spec.policy, _pruner(spec)
    if policy is None or pruner is None:
        return Evaluation(None, trials[index].system_attrs)
    study = _study(spec, trials, histories, number, pruner)
    stop = None
    for step in steps:
        if not _due(policy, step):
            continue
        whole = study.get_trials(deepcopy=False)[index]  # its attributes as the pruner left them
        seen = copy.copy(whole)  # the trial as it stood at ``step``
        seen.intermediate_values = {s: v for s, v in whole.intermediate_values.items() if s <= step}
        if isinstance(pruner, BanditPruner):
            stop = pruner.verdict(study, seen)
        elif pruner.prune(study, seen):
            if isinstance(pruner, HyperbandPruner):
                stop = _hyperband_numbers(spec, study, pruner, index, step)
            else:
                stop = _percentile_numbers(spec, study, seen, step)
        if stop is not None:
            break
    attrs = study.get_trials(deepcopy=False)[index].system_attrs
    return Evaluation(stop, {k: v for k, v in attrs.items() if _plain(v)})


def _hyperband_numbers(
    spec: SweepSpec, study: optuna.Study, pruner: HyperbandPruner, index: int, step: int
) -> dict[str, Any]:
    """The numbers behind a successive-halving stop: the rung the trial reached, its value
    there, and the value it needed to be among the best ``1 / reduction_factor`` of its bracket.
    """
    policy = spec.policy
    assert policy is not None
    trial = study.get_trials(deepcopy=False)[index]
    rungs = [k for k in trial.system_attrs if k.startswith(_RUNG)]
    rung = max(int(k[len(_RUNG) :]) for k in rungs) if rungs else 0
    key = f"{_RUNG}{rung}"
    bracket = pruner._get_bracket_id(study, trial)
    peers = pruner._create_bracket_study(study, bracket).get_trials(deepcopy=False)
    value = trial.system_attrs.get(key, trial.intermediate_values[step])
    competing = sorted(
        [t.system_attrs[key] for t in peers if t.number != trial.number and key in t.system_attrs]
        + [value]
    )
    factor = policy.reduction_factor or 3
    keep = max(len(competing) // factor - 1, 0)
    maximize = study.direction == StudyDirection.MAXIMIZE
    cutoff = competing[-(keep + 1)] if maximize else competing[keep]
    return {
        "step": step,
        "bracket": bracket,
        "rung": rung,
        "value": value,
        "cutoff": cutoff,
        "trials_at_rung": len(competing),
    }


def _percentile_numbers(
    spec: SweepSpec, study: optuna.Study, trial: FrozenTrial, step: int
) -> dict[str, Any]:
    """The numbers behind a median or truncation stop, as Optuna's pruner computes them."""
    policy = spec.policy
    assert policy is not None
    keep = 50.0 if policy.kind == "median_stopping" else 100.0 - (policy.truncation_percentage or 0)
    maximize = study.direction == StudyDirection.MAXIMIZE
    at_step = [
        t.intermediate_values[step]
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if step in t.intermediate_values
    ]
    values = [v for s, v in trial.intermediate_values.items() if s <= step and math.isfinite(v)]
    best = (max(values) if maximize else min(values)) if values else None
    cutoff = float(np.nanpercentile(at_step, 100 - keep if maximize else keep)) if at_step else None
    name = "median" if policy.kind == "median_stopping" else "cutoff"
    return {"step": step, "best_value": best, name: cutoff, "finished_trials": len(at_step)}
