"""Pipelines: steps, the data they pass, the DAG they form, and its checks.

A pipeline is a set of steps; each runs a script as a job. A step's
arguments are strings that may hold placeholders, resolved when it runs::

    ${{inputs.prepared}}      the local folder holding data ``prepared``
    ${{outputs.model}}        the local folder the step writes data ``model`` to
    ${{parameters.lr}}        the value of the pipeline parameter ``lr``

A step may also read registered dataset versions: its config's ``inputs``
(as a job's: ``[{"name", "dataset", "version", "mode"}]``), each named in
its arguments by its input mark and downloaded before the script starts.

A step that takes data runs after the step that produces it; ``run_after``
adds orderings that pass no data. ``PipelineSpec.parse`` checks the whole
graph before anything runs: duplicate names, data without a producer or
with two, unknown parameters and cycles, each error naming the steps.

Reuse is decided by a step's *fingerprint* (``fingerprint``): its code
snapshot and script, argument template, the values of the parameters it
uses, its environment, the content hashes of its inputs and the content
digests of the dataset versions it reads. ``why_ran``
names what differs from an earlier run of the same step.
"""

from __future__ import annotations

import graphlib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cumulo.core.datasets import INPUT_MARK, input_mark
from cumulo.core.entities import Record
from cumulo.core.errors import InvalidInput
from cumulo.core.validation import key

PIPELINE_RUN_KIND = "pipeline"
STEP_TAG = "cumulo.pipeline.step"  # a step run's tag: its step's name
PUBLISHED_TAG = "cumulo.pipeline.published"  # a run of a published pipeline: its id
SCHEDULE_TAG, TICK_TAG = "cumulo.schedule", "cumulo.schedule.tick"  # a scheduled run's
MAX_STEPS = 500
INPUTS_DIR, OUTPUTS_DIR = "inputs", "outputs"  # where a step's data folders are, in its workdir

PLACEHOLDER = re.compile(r"\$\{\{\s*(inputs|outputs|parameters)\.([A-Za-z0-9_.\-]+)\s*\}\}")

# Step states (the ``state`` of a step row).
WAITING, SUBMITTING, RUNNING = "waiting", "submitting", "running"
COMPLETED, REUSED, FAILED, CANCELED = "completed", "reused", "failed", "canceled"
DONE_STATES = frozenset({COMPLETED, REUSED})
ENDED_STATES = frozenset({COMPLETED, REUSED, FAILED, CANCELED})


def placeholder(kind: str, name: str) -> str:
    """``placeholder("inputs", "x")`` -> ``"${{inputs.x}}"``."""
    return "${{" + f"{kind}.{name}" + "}}"


def data_name(name: Any, what: str = "data") -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}", name):
        raise InvalidInput(
            f"{what} name {name!r} must be 1-100 letters, digits, '_', '-' or '.', "
            "starting with a letter, digit or '_'."
        )
    return name


@dataclass(frozen=True)
class StepSpec(Record):
    """One step: its job config (no arguments) and what the pipeline adds to it."""

    name: str
    config: dict[str, Any]  # script, snapshot, compute_target, environment...
    arguments: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    run_after: list[str] = field(default_factory=list)
    allow_reuse: bool = True

    @classmethod
    def parse(cls, data: Any) -> StepSpec:
        if isinstance(data, StepSpec):
            return data
        if not isinstance(data, Mapping):
            raise InvalidInput("A pipeline step must be an object.")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidInput(f"Unknown step fields: {sorted(unknown)}.")
        name = data_name(data.get("name"), "Step")
        config = data.get("config") or {}
        if not isinstance(config, Mapping):
            raise InvalidInput(f"Step {name!r}: config must be an object.")
        args = data.get("arguments") or []
        if not isinstance(args, list | tuple) or not all(
            isinstance(a, str | int | float) and not isinstance(a, bool) for a in args
        ):
            raise InvalidInput(f"Step {name!r}: arguments must be a list of strings or numbers.")
        names = {}
        for what in ("inputs", "outputs", "run_after"):
            got = data.get(what) or []
            if not isinstance(got, list | tuple):
                raise InvalidInput(f"Step {name!r}: {what} must be a list of names.")
            clean = [data_name(n, "Step" if what == "run_after" else "Data") for n in got]
            if len(set(clean)) != len(clean):
                raise InvalidInput(f"Step {name!r} lists a name twice in {what}.")
            names[what] = clean
        reuse = data.get("allow_reuse", True)
        if not isinstance(reuse, bool):
            raise InvalidInput(f"Step {name!r}: allow_reuse must be true or false.")
        step = cls(
            name=name,
            config=dict(config),
            arguments=[str(a) for a in args],
            inputs=names["inputs"],
            outputs=names["outputs"],
            run_after=names["run_after"],
            allow_reuse=reuse,
        )
        both = set(step.inputs) & set(step.outputs)
        if both:
            raise InvalidInput(
                f"Step {name!r} both takes and produces {', '.join(sorted(both))}: "
                "a step cannot depend on itself."
            )
        named = {input_mark(i.get("name", "")) for i in step.datasets if isinstance(i, Mapping)}
        loose = [a for a in step.arguments if a.startswith(INPUT_MARK) and a not in named]
        if loose:
            raise InvalidInput(f"Step {name!r}: argument {loose[0]!r} names no dataset input.")
        for kind, ref in step.placeholders():
            listed = step.inputs if kind == "inputs" else step.outputs
            if kind != "parameters" and ref not in listed:
                raise InvalidInput(
                    f"Step {name!r} uses {placeholder(kind, ref)} but does not list {ref!r} "
                    f"in its {kind}."
                )
        return step

    def placeholders(self) -> list[tuple[str, str]]:
        return [(m[0], m[1]) for a in self.arguments for m in PLACEHOLDER.findall(a)]

    @property
    def parameters(self) -> list[str]:
        return sorted({ref for kind, ref in self.placeholders() if kind == "parameters"})

    @property
    def datasets(self) -> list[dict[str, Any]]:
        """The dataset versions the step reads (its job config's ``inputs``)."""
        got = self.config.get("inputs") or []
        if not isinstance(got, list):
            raise InvalidInput(f"Step {self.name!r}: config inputs must be a list.")
        return got

    def resolve(self, values: Mapping[str, Any]) -> list[str]:
        """The script's arguments: folders for data, values for parameters."""

        def sub(m: re.Match[str]) -> str:
            kind, ref = m[1], m[2]
            if kind == "parameters":
                return str(values[ref])
            return f"{INPUTS_DIR if kind == 'inputs' else OUTPUTS_DIR}/{ref}"

        return [PLACEHOLDER.sub(sub, a) for a in self.arguments]


@dataclass(frozen=True)
class PipelineSpec(Record):
    """A checked pipeline: its steps, parameters (name -> default) and failure policy."""

    steps: list[StepSpec]
    parameters: dict[str, Any] = field(default_factory=dict)
    continue_on_step_failure: bool = False
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [s.to_dict() for s in self.steps],
            "parameters": dict(self.parameters),
            "continue_on_step_failure": self.continue_on_step_failure,
            "description": self.description,
        }

    @classmethod
    def parse(cls, data: Any) -> PipelineSpec:
        if isinstance(data, PipelineSpec):
            data = data.to_dict()
        if not isinstance(data, Mapping):
            raise InvalidInput("A pipeline spec must be an object.")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidInput(f"Unknown pipeline fields: {sorted(unknown)}.")
        raw = data.get("steps")
        if not isinstance(raw, list | tuple) or not raw:
            raise InvalidInput("A pipeline needs at least one step.")
        if len(raw) > MAX_STEPS:
            raise InvalidInput(f"A pipeline takes at most {MAX_STEPS} steps.")
        steps = [StepSpec.parse(s) for s in raw]
        params = data.get("parameters") or {}
        if not isinstance(params, Mapping):
            raise InvalidInput("Pipeline parameters must be an object of names to defaults.")
        clean = {}
        for name, value in params.items():
            clean[key(name, "parameter")] = _parameter_value(name, value)
        cont = data.get("continue_on_step_failure", False)
        if not isinstance(cont, bool):
            raise InvalidInput("continue_on_step_failure must be true or false.")
        description = data.get("description") or ""
        if not isinstance(description, str):
            raise InvalidInput("A pipeline's description must be a string.")
        spec = cls(steps, clean, cont, description)
        check_graph(spec.steps, spec.parameters)
        return spec

    # ---------------------------------------------------------------- graph
    def step(self, name: str) -> StepSpec:
        for s in self.steps:
            if s.name == name:
                return s
        raise InvalidInput(f"The pipeline has no step {name!r}.")

    def producers(self) -> dict[str, str]:
        """Data name -> the step that produces it."""
        return {d: s.name for s in self.steps for d in s.outputs}

    def upstream(self) -> dict[str, list[str]]:
        """Step -> the steps it waits for (its inputs' producers and ``run_after``)."""
        made = self.producers()
        return {
            s.name: sorted({made[d] for d in s.inputs if d in made} | set(s.run_after))
            for s in self.steps
        }

    def order(self) -> list[str]:
        """The steps, each after every step it waits for (ties in their given order)."""
        up = self.upstream()
        seen: list[str] = []
        left = [s.name for s in self.steps]
        while left:
            ready = [n for n in left if all(u in seen for u in up[n])]
            seen += ready
            left = [n for n in left if n not in ready]
        return seen

    def with_parameters(self, values: Mapping[str, Any] | None) -> dict[str, Any]:
        """The defaults overridden by ``values``; an unknown name is an error."""
        values = dict(values or {})
        unknown = set(values) - set(self.parameters)
        if unknown:
            known = ", ".join(sorted(self.parameters)) or "none"
            raise InvalidInput(
                f"Unknown pipeline parameters: {', '.join(sorted(unknown))}; "
                f"the pipeline declares: {known}."
            )
        out = dict(self.parameters)
        for name, value in values.items():
            out[name] = _parameter_value(name, value)
        return out


def _parameter_value(name: str, value: Any) -> Any:
    if value is not None and not isinstance(value, str | int | float | bool):
        raise InvalidInput(
            f"Pipeline parameter {name!r} must be a string, number or boolean, got {value!r}."
        )
    return value


def check_graph(steps: Iterable[StepSpec], parameters: Mapping[str, Any]) -> None:
    """Raise ``InvalidInput`` naming the steps of the first problem the graph has."""
    steps = list(steps)
    seen: dict[str, int] = {}
    for s in steps:
        seen[s.name] = seen.get(s.name, 0) + 1
    twice = sorted(n for n, c in seen.items() if c > 1)
    if twice:
        raise InvalidInput(
            f"Step names must be unique; used more than once: {', '.join(map(repr, twice))}."
        )
    made: dict[str, str] = {}
    for s in steps:
        for d in s.outputs:
            if d in made:
                raise InvalidInput(
                    f"Data {d!r} is produced by two steps, {made[d]!r} and {s.name!r}; "
                    "give each output its own name."
                )
            made[d] = s.name
    for s in steps:
        for d in s.inputs:
            if d not in made:
                raise InvalidInput(
                    f"Step {s.name!r} takes {d!r}, which no step produces; add a step with "
                    f"{d!r} among its outputs, or fix the name."
                )
        for after in s.run_after:
            if after not in seen:
                raise InvalidInput(
                    f"Step {s.name!r} runs after {after!r}, which is not a step of this pipeline."
                )
        for p in s.parameters:
            if p not in parameters:
                raise InvalidInput(
                    f"Step {s.name!r} uses parameter {p!r}, which the pipeline does not declare."
                )
    graph = {
        s.name: {made[d] for d in s.inputs} | set(s.run_after) for s in steps
    }  # step -> what it waits for
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = list(exc.args[1])  # each runs before the next
        raise InvalidInput(
            f"The steps form a cycle: {' -> '.join(cycle)}; a pipeline must be acyclic "
            "(check their inputs, outputs and run_after)."
        ) from None


# ------------------------------------------------------------------ reuse
def fingerprint_parts(
    step: StepSpec,
    values: Mapping[str, Any],
    inputs: Mapping[str, str],
    datasets: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """What decides reuse: code, arguments, parameters, environment, inputs' content.

    ``datasets`` maps each dataset input to ``{"version": "name:N", "digest": ...}``.
    """
    cfg = step.config
    env = str(cfg.get("environment") or "current")
    if cfg.get("environment_version") is not None:
        env += f":{cfg['environment_version']}"
    return {
        "code": f"{cfg.get('snapshot')}/{cfg.get('script')}",
        "arguments": list(step.arguments),
        "parameters": {p: values[p] for p in step.parameters},
        "environment": env,
        "inputs": {d: inputs[d] for d in step.inputs},
        "outputs": list(step.outputs),
        **({"datasets": {n: dict(v) for n, v in datasets.items()}} if datasets else {}),
    }


def fingerprint(parts: Mapping[str, Any]) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def why_ran(parts: Mapping[str, Any], earlier: Mapping[str, Any] | None, step: str) -> str:
    """Why a step ran rather than reused: what changed since its last completed run."""
    if earlier is None:
        return f"no earlier completed run of step {step!r} to reuse"
    changed = []
    if parts.get("code") != earlier.get("code"):
        changed.append("code changed")
    if parts.get("arguments") != earlier.get("arguments"):
        changed.append("arguments changed")
    new_p, old_p = parts.get("parameters") or {}, earlier.get("parameters") or {}
    for p in sorted(set(new_p) | set(old_p)):
        if new_p.get(p) != old_p.get(p):
            changed.append(f"parameter {p} changed ({old_p.get(p)!r} -> {new_p.get(p)!r})")
    if parts.get("environment") != earlier.get("environment"):
        changed.append(
            f"environment changed ({earlier.get('environment')} -> {parts.get('environment')})"
        )
    new_i, old_i = parts.get("inputs") or {}, earlier.get("inputs") or {}
    for d in sorted(set(new_i) | set(old_i)):
        if new_i.get(d) != old_i.get(d):
            changed.append(f"input {d} changed")
    new_d, old_d = parts.get("datasets") or {}, earlier.get("datasets") or {}
    for d in sorted(set(new_d) | set(old_d)):
        new, old = new_d.get(d) or {}, old_d.get(d) or {}
        if new != old:
            was, now = old.get("version") or "none", new.get("version") or "none"
            changed.append(f"dataset {d} changed ({was} -> {now})")
    if parts.get("outputs") != earlier.get("outputs"):
        changed.append("outputs changed")
    return "; ".join(changed) or "no completed run with the same fingerprint"


# ---------------------------------------------------------------- records
@dataclass(frozen=True)
class StepState(Record):
    """A step of a pipeline run as stored: its state, run, outputs and the reuse decision."""

    name: str
    state: str
    run_id: str | None = None
    fingerprint: str | None = None
    parts: dict[str, Any] | None = None
    outputs: dict[str, str] | None = None  # data name -> content hash (a stored folder)
    reused_from: str | None = None
    reason: str = ""
    started_at: int | None = None
    ended_at: int | None = None


@dataclass(frozen=True)
class PipelineRunInfo:
    """A stored pipeline run: its parent run, spec, parameter values and state."""

    id: int
    run_id: str
    workspace: str
    experiment_id: int
    spec: PipelineSpec
    parameters: dict[str, Any]
    template: dict[str, Any]  # user, submitter role
    state: str
    resume_of: str | None
    created_at: int


@dataclass(frozen=True)
class PublishedPipelineInfo(Record):
    id: str
    workspace: str
    name: str
    version: str
    description: str
    spec: dict[str, Any]
    created_at: int
    is_default: bool = False

    @property
    def pipeline_spec(self) -> PipelineSpec:
        return PipelineSpec.parse(self.spec)


@dataclass(frozen=True)
class ScheduleInfo(Record):
    workspace: str
    name: str
    pipeline_id: str
    experiment_name: str
    parameters: dict[str, Any]
    frequency: str | None
    interval: int | None
    start_time: int | None  # ms; ticks fall on start_time + k * interval
    cron: str | None
    enabled: bool
    next_fire_at: int | None
    last_fired_at: int | None = None
    last_run_id: str | None = None
    created_at: int = 0
    on_dataset: str | None = None  # fires once per new version of this dataset
    dataset_version: int | None = None  # the newest version it fired for, or saw when made

    @property
    def rule(self) -> str:
        """When it fires, in words: ``every 5 Minute``, its cron, or ``on new digits``."""
        if self.on_dataset is not None:
            return f"on new {self.on_dataset}"
        return self.cron or f"every {self.interval} {self.frequency}"
