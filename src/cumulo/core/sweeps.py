"""Sweeps: search spaces, sampling, early-termination policies and their checks.

A sweep runs one script many times (its *trials*), each with hyperparameters
drawn from a search space, and keeps the best by a primary metric. This module
holds the spec only, as plain values that travel as JSON: the services turn it
into Optuna's distributions, samplers and pruners (``services/sweeps.py``).

Parameter expressions (the cloud service's names)::

    choice(0.01, 0.1, 1)          one of the values (also ``choice([...])``)
    randint(10)                   an integer in 0..9
    uniform(0, 1)                 a float in [0, 1]
    quniform(0, 10, 2)            round(uniform(0, 10) / 2) * 2
    loguniform(-6, -1)            exp(uniform(-6, -1)): a float in [e^-6, e^-1]
    qloguniform(0, 5, 1)          round(exp(uniform(0, 5)) / 1) * 1
    normal(0, 1)                  a normal draw, mean 0 and standard deviation 1
    qnormal(0, 10, 1)             round(normal(0, 10) / 1) * 1
    lognormal(0, 1)               exp(normal(0, 1))
    qlognormal(0, 1, 1)           round(exp(normal(0, 1)) / 1) * 1

A quantized expression whose ``q`` is a whole number gives whole numbers
(``3``, not ``3.0``), so scripts can parse them with ``type=int``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cumulo.core.errors import InvalidInput
from cumulo.core.validation import key

SWEEP_RUN_KIND = "sweep"
MAX_TOTAL_RUNS = 1000
MAX_PARAMETERS = 50
MAX_CHOICES = 1000
# Tags of a trial's run: its sweep's run id is its parent; its number in the sweep.
TRIAL_TAG = "cumulo.sweep.trial"
# Properties of a trial stopped by the early-termination policy.
STOPPED_BY = "sweep.stopped_by"
STOPPED_REASON = "sweep.stopped_reason"

# name -> (argument names, quantized)
_EXPRESSIONS: dict[str, tuple[tuple[str, ...], bool]] = {
    "choice": (("options",), False),
    "randint": (("upper",), False),
    "uniform": (("min_value", "max_value"), False),
    "quniform": (("min_value", "max_value", "q"), True),
    "loguniform": (("min_value", "max_value"), False),
    "qloguniform": (("min_value", "max_value", "q"), True),
    "normal": (("mu", "sigma"), False),
    "qnormal": (("mu", "sigma", "q"), True),
    "lognormal": (("mu", "sigma"), False),
    "qlognormal": (("mu", "sigma", "q"), True),
}


class PrimaryMetricGoal(StrEnum):
    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"

    @staticmethod
    def parse(value: Any) -> PrimaryMetricGoal:
        if isinstance(value, PrimaryMetricGoal):
            return value
        if isinstance(value, str) and value.upper() in PrimaryMetricGoal.__members__:
            return PrimaryMetricGoal[value.upper()]
        raise InvalidInput(
            f"Unknown primary_metric_goal {value!r}; use PrimaryMetricGoal.MAXIMIZE or MINIMIZE."
        )

    @property
    def direction(self) -> str:
        return self.value.lower()

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self is PrimaryMetricGoal.MAXIMIZE else a < b


# ----------------------------------------------------------------- expressions
@dataclass(frozen=True)
class ParameterExpression:
    """One hyperparameter's distribution: ``kind`` (``uniform``...) and its arguments."""

    kind: str
    args: tuple[Any, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "args": [list(a) if isinstance(a, tuple) else a for a in self.args],
        }

    @classmethod
    def parse(cls, name: str, data: Any) -> ParameterExpression:
        """Check an expression (an instance or its dict form) for the parameter ``name``."""
        if isinstance(data, ParameterExpression):
            data = data.to_dict()
        if not isinstance(data, Mapping) or not isinstance(data.get("kind"), str):
            raise InvalidInput(
                f"Parameter {name!r} must be an expression such as uniform(0, 1) or "
                f"choice(1, 2, 3), got {data!r}."
            )
        kind = str(data["kind"]).lower()
        if kind not in _EXPRESSIONS:
            known = ", ".join(_EXPRESSIONS)
            raise InvalidInput(f"Parameter {name!r}: unknown expression {kind!r}; use {known}.")
        names, quantized = _EXPRESSIONS[kind]
        args = list(data.get("args") or [])
        if len(args) != len(names):
            raise InvalidInput(f"Parameter {name!r}: {kind}() takes {', '.join(names)}.")
        if kind == "choice":
            return cls(kind, (_options(name, args[0]),))
        nums = [_number(name, kind, n, v) for n, v in zip(names, args, strict=True)]
        if kind == "randint":
            if not float(nums[0]).is_integer() or nums[0] < 1:
                raise InvalidInput(f"Parameter {name!r}: randint(upper) needs a whole upper >= 1.")
            return cls(kind, (int(nums[0]),))
        if kind in ("normal", "qnormal", "lognormal", "qlognormal"):
            if nums[1] <= 0:
                raise InvalidInput(f"Parameter {name!r}: {kind}() needs sigma > 0.")
        elif nums[0] >= nums[1]:
            raise InvalidInput(f"Parameter {name!r}: {kind}() needs min_value < max_value.")
        if kind in ("loguniform", "qloguniform") and max(abs(nums[0]), abs(nums[1])) > 700:
            raise InvalidInput(
                f"Parameter {name!r}: {kind}(min_value, max_value) takes exponents "
                "(the value is exp(uniform(min, max))); keep them within ±700."
            )
        if quantized and nums[-1] <= 0:
            raise InvalidInput(f"Parameter {name!r}: {kind}() needs q > 0.")
        return cls(kind, tuple(nums))

    @property
    def quantum(self) -> float | None:
        return float(self.args[-1]) if _EXPRESSIONS[self.kind][1] else None

    def quantize(self, value: float) -> float | int:
        """The value a quantized expression gives for the raw draw ``value``."""
        q = self.quantum
        if q is None:
            return value
        out = round(value / q) * q
        return round(out) if q.is_integer() else round(out, 12)

    def __repr__(self) -> str:
        if self.kind == "choice":
            return f"choice({', '.join(map(repr, self.args[0]))})"
        return f"{self.kind}({', '.join(map(repr, self.args))})"


def _number(name: str, kind: str, arg: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"Parameter {name!r}: {kind}() needs a finite number for {arg}.")
    return value


def _options(name: str, values: Any) -> tuple[Any, ...]:
    if isinstance(values, str) or not isinstance(values, list | tuple | range):
        raise InvalidInput(f"Parameter {name!r}: choice() takes values, e.g. choice(1, 2, 3).")
    out = tuple(values)
    if not out:
        raise InvalidInput(f"Parameter {name!r}: choice() needs at least one value.")
    if len(out) > MAX_CHOICES:
        raise InvalidInput(f"Parameter {name!r}: choice() takes at most {MAX_CHOICES} values.")
    for v in out:
        ok = v is None or isinstance(v, str | bool | int | float)
        if not ok or (isinstance(v, float) and not math.isfinite(v)):
            raise InvalidInput(
                f"Parameter {name!r}: choice() values must be strings, numbers or booleans, "
                f"got {v!r}."
            )
    if len({(type(v), v) for v in out}) != len(out):
        raise InvalidInput(f"Parameter {name!r}: choice() lists a value twice.")
    return out


def choice(*options: Any) -> ParameterExpression:
    """One of ``options``: ``choice(16, 32, 64)`` or ``choice([16, 32, 64])``."""
    if len(options) == 1 and isinstance(options[0], list | tuple | range):
        options = tuple(options[0])
    return ParameterExpression.parse("choice", {"kind": "choice", "args": [list(options)]})


def _expr(kind: str, *args: Any) -> ParameterExpression:
    return ParameterExpression.parse(kind, {"kind": kind, "args": list(args)})


def randint(upper: int) -> ParameterExpression:
    """A whole number in ``0 .. upper - 1``."""
    return _expr("randint", upper)


def uniform(min_value: float, max_value: float) -> ParameterExpression:
    """A float drawn uniformly between ``min_value`` and ``max_value``."""
    return _expr("uniform", min_value, max_value)


def quniform(min_value: float, max_value: float, q: float) -> ParameterExpression:
    """``round(uniform(min_value, max_value) / q) * q``."""
    return _expr("quniform", min_value, max_value, q)


def loguniform(min_value: float, max_value: float) -> ParameterExpression:
    """``exp(uniform(min_value, max_value))``: its logarithm is uniform (bounds are exponents)."""
    return _expr("loguniform", min_value, max_value)


def qloguniform(min_value: float, max_value: float, q: float) -> ParameterExpression:
    """``round(exp(uniform(min_value, max_value)) / q) * q``."""
    return _expr("qloguniform", min_value, max_value, q)


def normal(mu: float, sigma: float) -> ParameterExpression:
    """A float drawn from a normal distribution with mean ``mu`` and deviation ``sigma``."""
    return _expr("normal", mu, sigma)


def qnormal(mu: float, sigma: float, q: float) -> ParameterExpression:
    """``round(normal(mu, sigma) / q) * q``."""
    return _expr("qnormal", mu, sigma, q)


def lognormal(mu: float, sigma: float) -> ParameterExpression:
    """``exp(normal(mu, sigma))``."""
    return _expr("lognormal", mu, sigma)


def qlognormal(mu: float, sigma: float, q: float) -> ParameterExpression:
    """``round(exp(normal(mu, sigma)) / q) * q``."""
    return _expr("qlognormal", mu, sigma, q)


def parameter_name(name: Any) -> str:
    """A space key: ``lr`` or ``--lr`` (the script gets ``--lr``; the param is ``lr``)."""
    if not isinstance(name, str):
        raise InvalidInput(f"A parameter name must be a string, got {name!r}.")
    bare = name[2:] if name.startswith("--") else name
    if not bare or bare.startswith("-"):
        raise InvalidInput(f"Parameter name {name!r} is empty.")
    return key(bare, "parameter")


def parse_space(space: Any) -> dict[str, ParameterExpression]:
    if not isinstance(space, Mapping):
        raise InvalidInput("A search space is a dict of parameter names to expressions.")
    if not space:
        raise InvalidInput(
            "The search space is empty; give at least one parameter, "
            "e.g. {'lr': loguniform(-6, -1)}."
        )
    if len(space) > MAX_PARAMETERS:
        raise InvalidInput(f"A search space takes at most {MAX_PARAMETERS} parameters.")
    out: dict[str, ParameterExpression] = {}
    for raw, expr in space.items():
        name = parameter_name(raw)
        if name in out:
            raise InvalidInput(f"Parameter {name!r} is given twice.")
        out[name] = ParameterExpression.parse(name, expr)
    return out


# ------------------------------------------------------------------- sampling
SAMPLINGS = ("random", "grid", "bayesian")


@dataclass(frozen=True)
class Sampling:
    """How trials' hyperparameters are chosen: ``random``, ``grid`` or ``bayesian`` (TPE)."""

    kind: str
    space: dict[str, ParameterExpression]
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "space": {k: v.to_dict() for k, v in self.space.items()},
            "seed": self.seed,
        }

    @classmethod
    def parse(cls, data: Any) -> Sampling:
        if isinstance(data, Sampling):
            data = data.to_dict()
        if not isinstance(data, Mapping):
            raise InvalidInput(
                "hyperparameter_sampling must be RandomParameterSampling, "
                "GridParameterSampling or BayesianParameterSampling."
            )
        kind = str(data.get("kind", "")).lower()
        if kind not in SAMPLINGS:
            raise InvalidInput(f"Unknown sampling {kind!r}; use {', '.join(SAMPLINGS)}.")
        space = parse_space(data.get("space"))
        seed = data.get("seed")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32
        ):
            raise InvalidInput(f"seed must be a whole number in 0..2**32-1, got {seed!r}.")
        if kind == "grid":
            ranged = [f"{n} = {e!r}" for n, e in space.items() if e.kind != "choice"]
            if ranged:
                raise InvalidInput(
                    "Grid sampling enumerates choice() values only; "
                    f"{', '.join(ranged)} is a range. List the values with choice(...), "
                    "or use RandomParameterSampling or BayesianParameterSampling."
                )
        return cls(kind, space, seed)

    @property
    def grid_size(self) -> int | None:
        if self.kind != "grid":
            return None
        return math.prod(len(e.args[0]) for e in self.space.values())


# -------------------------------------------------------------------- policies
POLICIES = ("bandit", "median_stopping", "truncation_selection", "hyperband")
_POLICY_FIELDS = (
    "evaluation_interval",
    "delay_evaluation",
    "slack_factor",
    "slack_amount",
    "truncation_percentage",
    "min_resource",
    "max_resource",
    "reduction_factor",
)


@dataclass(frozen=True)
class Policy:
    """An early-termination policy: ``bandit``, ``median_stopping``, ``truncation_selection``
    or ``hyperband``.

    ``evaluation_interval`` and ``delay_evaluation`` count the steps at which
    trials report the primary metric; so do hyperband's ``min_resource`` (the
    first rung) and ``max_resource`` (the most steps a trial reports).
    """

    kind: str
    evaluation_interval: int = 1
    delay_evaluation: int = 0
    slack_factor: float | None = None
    slack_amount: float | None = None
    truncation_percentage: float | None = None
    min_resource: int | None = None
    max_resource: int | None = None
    reduction_factor: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in _POLICY_FIELDS:
            if getattr(self, f) is not None:
                out[f] = getattr(self, f)
        return out

    @property
    def label(self) -> str:
        return {
            "bandit": "BanditPolicy",
            "median_stopping": "MedianStoppingPolicy",
            "truncation_selection": "TruncationSelectionPolicy",
            "hyperband": "HyperbandPolicy",
        }[self.kind]

    @classmethod
    def parse(cls, data: Any) -> Policy | None:
        if data is None:
            return None
        if isinstance(data, Policy):
            data = data.to_dict()
        if not isinstance(data, Mapping):
            raise InvalidInput(
                "policy must be BanditPolicy, MedianStoppingPolicy, TruncationSelectionPolicy, "
                "HyperbandPolicy or None."
            )
        kind = str(data.get("kind", "")).lower()
        if kind in ("none", "no_termination"):
            return None
        if kind not in POLICIES:
            raise InvalidInput(f"Unknown policy {kind!r}; use {', '.join(POLICIES)}.")
        unknown = set(data) - {"kind", *cls.__dataclass_fields__}
        if unknown:
            raise InvalidInput(f"Unknown policy fields: {sorted(unknown)}.")
        interval = _whole(data.get("evaluation_interval", 1), "evaluation_interval", 1)
        delay = _whole(data.get("delay_evaluation", 0), "delay_evaluation", 0)
        factor, amount, pct = (
            data.get("slack_factor"),
            data.get("slack_amount"),
            data.get("truncation_percentage"),
        )
        if kind == "bandit":
            if (factor is None) == (amount is None):
                raise InvalidInput("BanditPolicy takes one of slack_factor or slack_amount.")
            for label, v in (("slack_factor", factor), ("slack_amount", amount)):
                if v is not None and (not _finite(v) or v < 0):
                    raise InvalidInput(f"BanditPolicy: {label} must be a number >= 0.")
            return cls(kind, interval, delay, slack_factor=factor, slack_amount=amount)
        if kind == "truncation_selection":
            if not _finite(pct) or not 1 <= float(pct or 0) <= 99:
                raise InvalidInput(
                    "TruncationSelectionPolicy: truncation_percentage must be between 1 and 99."
                )
            return cls(kind, interval, delay, truncation_percentage=pct)
        if kind == "hyperband":
            low = _whole(data.get("min_resource", 1), "HyperbandPolicy: min_resource", 1)
            high = _whole(data.get("max_resource"), "HyperbandPolicy: max_resource", 1)
            if high <= low:
                raise InvalidInput("HyperbandPolicy: max_resource must be above min_resource.")
            factor = _whole(data.get("reduction_factor", 3), "HyperbandPolicy: reduction_factor", 2)
            return cls(
                kind, interval, delay, min_resource=low, max_resource=high, reduction_factor=factor
            )
        return cls(kind, interval, delay)


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v: Any, what: str, least: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < least:
        raise InvalidInput(f"{what} must be a whole number >= {least}, got {v!r}.")
    return v


# ------------------------------------------------------------------------ spec
@dataclass(frozen=True)
class SweepSpec:
    """Everything about a sweep but the script: sampling, policy, metric, goal and limits.

    A multi-objective sweep lists its metrics in ``primary_metrics`` (two or
    more ``(name, goal)`` pairs); ``primary_metric_name`` and ``_goal`` are
    then its first. ``resume_from`` names the sweep whose trials warm-started
    the sampler.
    """

    sampling: Sampling
    primary_metric_name: str
    primary_metric_goal: PrimaryMetricGoal
    max_total_runs: int
    max_concurrent_runs: int
    policy: Policy | None = None
    max_duration_minutes: float | None = None
    primary_metrics: tuple[tuple[str, PrimaryMetricGoal], ...] = ()
    resume_from: str | None = None

    @property
    def objectives(self) -> tuple[tuple[str, PrimaryMetricGoal], ...]:
        """Every metric the sweep optimizes, with its goal: one, or several."""
        return self.primary_metrics or ((self.primary_metric_name, self.primary_metric_goal),)

    @property
    def multi_objective(self) -> bool:
        return len(self.primary_metrics) > 1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sampling": self.sampling.to_dict(),
            "policy": self.policy.to_dict() if self.policy else None,
            "primary_metric_name": self.primary_metric_name,
            "primary_metric_goal": self.primary_metric_goal.value,
            "max_total_runs": self.max_total_runs,
            "max_concurrent_runs": self.max_concurrent_runs,
            "max_duration_minutes": self.max_duration_minutes,
        }
        if self.primary_metrics:
            out["primary_metrics"] = [[n, g.value] for n, g in self.primary_metrics]
        if self.resume_from is not None:
            out["resume_from"] = self.resume_from
        return out

    @classmethod
    def parse(cls, data: Any) -> SweepSpec:
        if not isinstance(data, Mapping):
            raise InvalidInput("A sweep spec must be an object.")
        unknown = set(data) - set(cls.__dataclass_fields__) - {"sampling"}
        if unknown:
            raise InvalidInput(f"Unknown sweep fields: {sorted(unknown)}.")
        sampling = Sampling.parse(data.get("sampling"))
        objectives = _objectives(data.get("primary_metrics"))
        metric = data.get("primary_metric_name")
        if objectives and metric and metric != objectives[0][0]:
            raise InvalidInput(
                f"primary_metric_name {metric!r} is not the first of primary_metrics "
                f"({objectives[0][0]!r}); give one or the other."
            )
        if objectives:
            metric, goal = objectives[0]
        else:
            if not isinstance(metric, str) or not metric:
                raise InvalidInput("A sweep needs primary_metric_name, the metric its trials log.")
            goal = PrimaryMetricGoal.parse(data.get("primary_metric_goal"))
        policy = Policy.parse(data.get("policy"))
        if len(objectives) > 1 and policy is not None:
            raise InvalidInput(
                f"{policy.label} stops trials by one metric, and a multi-objective sweep has "
                f"{len(objectives)} (Optuna prunes single-objective studies only): drop the "
                "policy, or optimize one primary_metric_name."
            )
        resume = data.get("resume_from")
        if resume is not None and (not isinstance(resume, str) or not resume):
            raise InvalidInput("resume_from names an earlier sweep by its run id.")
        if resume is not None and sampling.kind != "bayesian":
            raise InvalidInput(
                f"resume_from warm-starts Bayesian sampling; {sampling.kind} sampling does not "
                "learn from earlier trials. Use BayesianParameterSampling."
            )
        total = data.get("max_total_runs", 20)
        if (
            isinstance(total, bool)
            or not isinstance(total, int)
            or not 1 <= total <= MAX_TOTAL_RUNS
        ):
            raise InvalidInput(f"max_total_runs must be between 1 and {MAX_TOTAL_RUNS}.")
        grid = sampling.grid_size
        if grid is not None:
            total = min(total, grid)  # a grid runs each point once
        concurrent = data.get("max_concurrent_runs")
        concurrent = total if concurrent is None else concurrent
        if isinstance(concurrent, bool) or not isinstance(concurrent, int) or concurrent < 1:
            raise InvalidInput("max_concurrent_runs must be a whole number >= 1.")
        minutes = data.get("max_duration_minutes")
        if minutes is not None and (not _finite(minutes) or minutes <= 0):
            raise InvalidInput("max_duration_minutes must be a number > 0 (or None).")
        return cls(
            sampling=sampling,
            primary_metric_name=key(metric, "metric"),
            primary_metric_goal=goal,
            max_total_runs=total,
            max_concurrent_runs=min(concurrent, total),
            policy=policy,
            max_duration_minutes=minutes,
            primary_metrics=objectives if len(objectives) > 1 else (),
            resume_from=resume,
        )


def _objectives(data: Any) -> tuple[tuple[str, PrimaryMetricGoal], ...]:
    """``[("accuracy", "maximize"), ("latency_ms", "minimize")]`` or ``{name: goal}``."""
    if data is None:
        return ()
    pairs = list(data.items()) if isinstance(data, Mapping) else data
    if isinstance(pairs, str) or not isinstance(pairs, list | tuple) or not pairs:
        raise InvalidInput(
            "primary_metrics lists (metric, goal) pairs, e.g. "
            '[("accuracy", "maximize"), ("latency_ms", "minimize")].'
        )
    out: list[tuple[str, PrimaryMetricGoal]] = []
    for pair in pairs:
        if isinstance(pair, str) or not isinstance(pair, list | tuple) or len(pair) != 2:
            raise InvalidInput(f"primary_metrics: {pair!r} is not a (metric, goal) pair.")
        name, goal = pair
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"primary_metrics: {name!r} is not a metric name.")
        out.append((key(name, "metric"), PrimaryMetricGoal.parse(goal)))
    if len({n for n, _ in out}) != len(out):
        raise InvalidInput("primary_metrics names a metric twice.")
    return tuple(out)


def script_arguments(params: Mapping[str, Any]) -> list[str]:
    """``{"lr": 0.01}`` -> ``["--lr", "0.01"]``: how a trial's script gets its values."""
    out = []
    for name, value in params.items():
        out += [f"--{name}", str(value)]
    return out


# --------------------------------------------------------------------- records
@dataclass(frozen=True)
class SweepInfo:
    """A stored sweep: its parent run, spec and the job config each trial starts from."""

    id: int
    run_id: str
    workspace: str
    experiment_id: int
    spec: SweepSpec
    job_config: dict[str, Any]
    state: str
    created_at: int


@dataclass(frozen=True)
class TrialInfo:
    """A claimed trial: the values its script gets, the sampler's own, its run and result."""

    number: int
    params: dict[str, Any]
    internal: dict[str, Any]
    system_attrs: dict[str, Any]
    state: str
    run_id: str | None = None
    value: float | None = None
    # a multi-objective trial's result: one value per objective, in order
    values: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "number": self.number,
            "params": self.params,
            "state": self.state,
            "run_id": self.run_id,
            "value": self.value,
        }
        if self.values is not None:
            out["values"] = list(self.values)
        return out
