"""Pipelines: steps that pass data, reuse unchanged work, and can be published and scheduled.

Each step runs a script as a job of its own (a child run of the pipeline's
run) on its compute target and environment. Data passes between steps as
folders: a step gets a local folder path as an argument, writes its outputs
there, and the next step gets a local folder with the same content. Outputs
are stored content-addressed, so a step whose code, arguments, parameters,
environment and inputs did not change reuses the earlier outputs without
running; when it runs, its details say why.

Example::

    from cumulo import (Experiment, Pipeline, PipelineData, PipelineParameter,
                        PythonScriptStep, Workspace)

    ws = Workspace.create("demo", exist_ok=True)
    prepared, model = PipelineData("prepared"), PipelineData("model")
    lr = PipelineParameter("lr", default_value=0.1)
    prepare = PythonScriptStep("prepare", "prepare.py", "src",
                               arguments=["--out", prepared], outputs=[prepared])
    train = PythonScriptStep("train", "train.py", "src",
                             arguments=["--data", prepared, "--lr", lr, "--model", model],
                             inputs=[prepared], outputs=[model])
    pipeline = Pipeline(ws, steps=[prepare, train])
    run = Experiment(ws, "pipelines").submit(pipeline, pipeline_parameters={"lr": 0.05})
    run.wait_for_completion()
    for step in run.get_steps():
        print(step["name"], step["status"], step["reason"])
"""

from __future__ import annotations

import builtins
import getpass
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import yaml

from cumulo.core.datasets import LATEST
from cumulo.core.errors import InvalidInput, NotFound, RunFailed
from cumulo.core.jobs import CURRENT_ENVIRONMENT, LOCAL_TARGET
from cumulo.core.pipelines import (
    PLACEHOLDER,
    REUSED,
    PipelineSpec,
    PublishedPipelineInfo,
    ScheduleInfo,
    StepSpec,
    check_graph,
    data_name,
    placeholder,
)
from cumulo.core.status import RunStatus
from cumulo.sdk import v1
from cumulo.sdk.compute import ComputeTarget
from cumulo.sdk.datasets import Dataset, DatasetConsumptionConfig, job_inputs
from cumulo.sdk.jobs import Environment, ScriptRunConfig, prepare_job_config
from cumulo.sdk.workspace import Experiment, Run, Workspace

__all__ = [
    "OutputFolder",
    "Pipeline",
    "PipelineData",
    "PipelineEndpoint",
    "PipelineParameter",
    "PipelineRun",
    "PublishedPipeline",
    "PythonScriptStep",
    "Schedule",
    "ScheduleRecurrence",
]

POLL_SECONDS = 0.05


class PipelineData:
    """A folder one step writes and later steps read, named within its pipeline.

    Put it in a step's ``outputs`` (the producer) and in the ``inputs`` of the
    steps that read it; used in ``arguments`` it becomes the folder's path.
    """

    @v1.arguments(
        "PipelineData",
        {
            k: "PipelineData(name) alone: a step's output is a folder kept with its run"
            for k in (
                "datastore",
                "output_mode",
                "output_path_on_compute",
                "output_overwrite",
                "is_directory",
                "pipeline_output_name",
            )
        },
    )
    def __init__(self, name: str) -> None:
        self.name = data_name(name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PipelineData) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class OutputFolder(PipelineData):
    """``PipelineData`` under the name newer pipelines use for a step's output folder."""


class PipelineParameter:
    """A value given when the pipeline is submitted (``pipeline_parameters``), else the default.

    Used in ``arguments`` it becomes the value: ``["--lr", PipelineParameter("lr", 0.1)]``.
    """

    def __init__(self, name: str, default_value: str | int | float | bool | None) -> None:
        self.name = data_name(name, "Parameter")
        self.default_value = default_value

    def __repr__(self) -> str:
        return f"PipelineParameter({self.name!r}, default_value={self.default_value!r})"


class PythonScriptStep:
    """A step that runs ``script_name`` from ``source_directory`` as a job.

    ``inputs`` and ``outputs`` are ``PipelineData``; data used in ``arguments``
    and listed in neither is taken as an input. A registered dataset version is
    an input too: ``ds.as_named_input("train").as_download()`` in ``arguments``
    (it becomes the path of a folder holding its files) or in ``inputs``. The
    version's content is part of what decides reuse, and the step's run records
    it. ``allow_reuse=False`` runs the step every time even when nothing changed.
    """

    @v1.arguments(
        "PythonScriptStep",
        {
            "runconfig": "compute_target= and environment= of the step",
            "params": "PipelineParameter values in arguments=",
            "hash_paths": "source_directory= (its whole content decides reuse)",
        },
    )
    def __init__(
        self,
        name: str,
        script_name: str,
        source_directory: str | Path = ".",
        arguments: Sequence[Any] = (),
        inputs: Sequence[PipelineData | DatasetConsumptionConfig] = (),
        outputs: Sequence[PipelineData] = (),
        compute_target: str | ComputeTarget | None = None,
        environment: Environment | str | None = None,
        allow_reuse: bool = True,
        run_after: Sequence[PythonScriptStep | str] = (),
    ) -> None:
        self.name = data_name(name, "Step")
        self.script_name = script_name
        self.source_directory = source_directory
        self.arguments = list(arguments)
        self.outputs = list(outputs)
        self.inputs = [d for d in inputs if not isinstance(d, DatasetConsumptionConfig)]
        _, self.datasets = job_inputs([*self.arguments, *inputs])  # dataset versions it reads
        for a in self.arguments:
            if isinstance(a, PipelineData) and a not in self.outputs and a not in self.inputs:
                self.inputs.append(a)
        self.compute_target = compute_target or LOCAL_TARGET
        self.environment = environment
        self.allow_reuse = allow_reuse
        self._after = [s if isinstance(s, str) else s.name for s in run_after]

    def run_after(self, step: PythonScriptStep | str) -> None:
        """Run this step after ``step`` even though no data passes between them."""
        self._after.append(step if isinstance(step, str) else step.name)

    def parameters(self) -> dict[str, PipelineParameter]:
        return {a.name: a for a in self.arguments if isinstance(a, PipelineParameter)}

    def _argument(self, value: Any) -> str:
        if isinstance(value, PipelineData):
            kind = "outputs" if value in self.outputs else "inputs"
            return placeholder(kind, value.name)
        if isinstance(value, PipelineParameter):
            return placeholder("parameters", value.name)
        if isinstance(value, DatasetConsumptionConfig):
            return value.mark
        if isinstance(value, os.PathLike):
            return str(os.fspath(value))
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidInput(f"Step {self.name!r}: argument {value!r} is not a string or number.")
        return str(value)

    def spec(self, config: dict[str, Any] | None = None) -> StepSpec:
        return StepSpec.parse(
            {
                "name": self.name,
                "config": {**(config or {}), "inputs": self.datasets},
                "arguments": [self._argument(a) for a in self.arguments],
                "inputs": [d.name for d in self.inputs],
                "outputs": [d.name for d in self.outputs],
                "run_after": self._after,
                "allow_reuse": self.allow_reuse,
            }
        )

    def job_config(
        self, ws: Workspace, taken: dict[Any, dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Snapshot the step's code and register its environment: its job config.

        ``taken`` keeps what was prepared for steps before, by source folder,
        target and environment, so a folder shared by many steps is packed once.
        """
        taken = {} if taken is None else taken
        env = self.environment
        target = self.compute_target
        key = (
            str(Path(self.source_directory).expanduser().resolve()),
            target.name if isinstance(target, ComputeTarget) else target,
            (env.name, tuple(env.pip_requirements), env.python)
            if isinstance(env, Environment)
            else env,
        )
        if key not in taken:
            cfg = prepare_job_config(
                ws,
                ScriptRunConfig(
                    self.source_directory, self.script_name, compute_target=target, environment=env
                ),
            )
            cfg.pop("arguments", None)
            taken[key] = cfg
        return {**taken[key], "script": self.script_name}

    def __repr__(self) -> str:
        return f"PythonScriptStep({self.name!r}, {self.script_name!r})"


class Pipeline:
    """Steps whose order follows from the data they pass (and ``run_after``).

    The graph is checked here: duplicate names, data nobody produces or two
    steps produce, unknown parameters and cycles are errors naming the steps.
    """

    @v1.arguments(
        "Pipeline",
        {
            "default_source_directory": "source_directory= of each PythonScriptStep",
            "default_datastore": "PipelineData(name) alone: outputs are kept with the step runs",
        },
    )
    def __init__(
        self,
        workspace: Workspace,
        steps: Sequence[PythonScriptStep],
        description: str = "",
        continue_on_step_failure: bool = False,
    ) -> None:
        self.workspace = workspace
        self.steps = list(steps)
        self.description = description
        self.continue_on_step_failure = continue_on_step_failure
        params: dict[str, PipelineParameter] = {}
        for step in self.steps:
            for name, p in step.parameters().items():
                if name in params and params[name].default_value != p.default_value:
                    raise InvalidInput(
                        f"Pipeline parameter {name!r} has two defaults: "
                        f"{params[name].default_value!r} and {p.default_value!r}."
                    )
                params[name] = p
        self.parameters = {n: p.default_value for n, p in params.items()}
        if not self.steps:
            raise InvalidInput("A pipeline needs at least one step.")
        check_graph([s.spec() for s in self.steps], self.parameters)

    @classmethod
    def load_yaml(cls, workspace: Workspace, path: str | Path) -> Pipeline:
        """A pipeline from a YAML file (``cumulo pipeline submit -f``; ``docs/pipelines.md``)."""
        file = Path(path)
        try:
            data = yaml.safe_load(file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInput(f"Cannot read pipeline file {file}: {exc}") from exc
        return cls.from_dict(workspace, data, base=file.parent)

    @classmethod
    def from_dict(cls, workspace: Workspace, data: Any, base: str | Path = ".") -> Pipeline:
        if not isinstance(data, dict):
            raise InvalidInput("A pipeline file holds an object with 'steps'.")
        known = {"steps", "parameters", "description", "continue_on_step_failure",
                 "defaults", "experiment"}  # fmt: skip
        unknown = set(data) - known
        if unknown:
            raise InvalidInput(f"Unknown pipeline fields: {sorted(unknown)}.")
        raw = data.get("steps")
        if isinstance(raw, dict):
            raw = [{"name": k, **(v or {})} for k, v in raw.items()]
        if not isinstance(raw, list) or not raw:
            raise InvalidInput("A pipeline file needs 'steps': a list of steps.")
        defaults = data.get("defaults") or {}
        params = data.get("parameters") or {}
        if not isinstance(params, dict):
            raise InvalidInput("'parameters' maps names to default values.")
        steps = [_yaml_step({**defaults, **s}, Path(base), params, workspace) for s in raw]
        pipeline = cls(
            workspace,
            steps,
            description=str(data.get("description") or ""),
            continue_on_step_failure=bool(data.get("continue_on_step_failure", False)),
        )
        unused = set(params) - set(pipeline.parameters)
        pipeline.parameters.update({n: params[n] for n in unused})
        return pipeline

    def to_spec(self) -> dict[str, Any]:
        """The pipeline as the service stores it (each step's code snapshotted)."""
        taken: dict[Any, dict[str, Any]] = {}
        steps = [s.spec(s.job_config(self.workspace, taken)).to_dict() for s in self.steps]
        return PipelineSpec.parse(
            {
                "steps": steps,
                "parameters": self.parameters,
                "continue_on_step_failure": self.continue_on_step_failure,
                "description": self.description,
            }
        ).to_dict()

    def submit_to(
        self,
        experiment: Experiment,
        tags: dict[str, str] | None = None,
        pipeline_parameters: dict[str, Any] | None = None,
        continue_on_step_failure: bool | None = None,
        display_name: str | None = None,
    ) -> PipelineRun:
        """What ``Experiment.submit(pipeline, ...)`` does: returns the pipeline's run at once."""
        ws = experiment.workspace
        ws.transport.host_jobs()
        info = ws.transport.pipelines.submit_pipeline(
            ws.name,
            experiment.id,
            self.to_spec(),
            pipeline_parameters,
            continue_on_step_failure=continue_on_step_failure,
            tags=tags,
            display_name=display_name,
            user=_user(),
        )
        return PipelineRun(ws, info)

    def publish(
        self, name: str, description: str = "", version: str | None = None
    ) -> PublishedPipeline:
        """Store this pipeline under ``name`` (version 1, 2... unless given) to run it later
        by id, over REST or on a schedule."""
        info = self.workspace.transport.pipelines.publish_pipeline(
            self.workspace.name, name, self.to_spec(), description or self.description, version
        )
        return PublishedPipeline(self.workspace, info)

    def __getattr__(self, name: str) -> Any:
        raise v1.refuse("Pipeline", name, v1.PIPELINE)

    def __repr__(self) -> str:
        return f"Pipeline(steps={[s.name for s in self.steps]})"


def _yaml_dataset(
    workspace: Workspace, step: Any, item: dict[str, Any]
) -> DatasetConsumptionConfig:
    """``{name: train, dataset: digits:2}`` (no ``:N``: the latest version, pinned now)."""
    if set(item) != {"name", "dataset"}:
        raise InvalidInput(
            f"Step {step!r}: a dataset input is {{name: ..., dataset: name:version}}, got {item!r}."
        )
    dataset, _, version = str(item["dataset"]).partition(":")
    if version and not version.isdigit():
        raise InvalidInput(f"Step {step!r}: dataset version {version!r} is not a number.")
    found = Dataset.get_by_name(workspace, dataset, int(version) if version else LATEST)
    ref: DatasetConsumptionConfig = found.as_named_input(data_name(item["name"], "Input"))
    return ref.as_download()


def _yaml_step(
    data: dict[str, Any], base: Path, params: dict[str, Any], workspace: Workspace
) -> PythonScriptStep:
    known = {"name", "script", "script_name", "source_directory", "arguments", "inputs",
             "outputs", "compute_target", "environment", "allow_reuse", "run_after"}  # fmt: skip
    unknown = set(data) - known
    name = data.get("name", "?")
    if unknown:
        raise InvalidInput(f"Step {name!r}: unknown fields {sorted(unknown)}.")
    outputs = {n: PipelineData(n) for n in data.get("outputs") or []}
    inputs: dict[str, PipelineData | DatasetConsumptionConfig] = {}
    for item in data.get("inputs") or []:
        if isinstance(item, dict):
            ref = _yaml_dataset(workspace, name, item)
            inputs[ref.name] = ref
        else:
            inputs[str(item)] = PipelineData(str(item))
    args: list[Any] = []
    for a in data.get("arguments") or []:
        text = str(a)
        whole = PLACEHOLDER.fullmatch(text.strip())
        for kind, ref in PLACEHOLDER.findall(text):
            if kind == "inputs" and isinstance(inputs.get(ref), DatasetConsumptionConfig):
                if not whole:
                    raise InvalidInput(
                        f"Step {name!r}: dataset input {ref!r} must be an argument of its own."
                    )
            elif kind == "outputs":
                outputs.setdefault(ref, PipelineData(ref))
            elif kind == "inputs":
                inputs.setdefault(ref, PipelineData(ref))
            elif ref not in params:
                raise InvalidInput(
                    f"Step {name!r} uses parameter {ref!r}, which 'parameters' does not declare."
                )
        if whole and whole[1] == "parameters":
            args.append(PipelineParameter(whole[2], params[whole[2]]))
        elif whole:
            args.append((outputs if whole[1] == "outputs" else inputs)[whole[2]])
        else:
            args.append(text)
    source = Path(str(data.get("source_directory") or "."))
    if not source.is_absolute():
        source = base / source
    env = data.get("environment")
    return PythonScriptStep(
        str(name),
        str(data.get("script") or data.get("script_name") or ""),
        source,
        arguments=args,
        inputs=list(inputs.values()),
        outputs=list(outputs.values()),
        compute_target=data.get("compute_target"),
        environment=str(env) if env not in (None, CURRENT_ENVIRONMENT) else None,
        allow_reuse=bool(data.get("allow_reuse", True)),
        run_after=[str(s) for s in data.get("run_after") or []],
    )


# --------------------------------------------------------------------- runs
class PipelineRun(Run):
    """A pipeline's run: its steps are its child runs.

    Example::

        run = exp.submit(pipeline)
        run.wait_for_completion()
        run.get_steps()                  # name, status, run id, reused from, reason
        run.find_step_run("train")       # the step's own Run (logs, metrics, outputs)
    """

    @staticmethod
    def get(workspace: Workspace, run_id: str) -> PipelineRun:
        info = workspace.transport.tracking.find_run(workspace.name, run_id)
        workspace.transport.pipelines.get_pipeline_run(workspace.name, info.id)
        return PipelineRun(workspace, info)

    def get_pipeline(self) -> dict[str, Any]:
        """The stored spec, parameter values, state and steps."""
        return self.workspace.transport.pipelines.get_pipeline_run(self.workspace.name, self.id)

    def get_steps(self) -> builtins.list[dict[str, Any]]:
        """Each step in the graph's order: ``name``, ``state``, ``status`` (what the studio
        shows, e.g. "Completed (reused from run 1a2b3c)"), ``run_id``, ``reused_from``,
        ``reason`` (why it ran, or why it was canceled) and ``upstream``."""
        out = []
        for s in self.get_pipeline()["steps"]:
            out.append({**s, "status": step_status(s)})
        return out

    def find_step_run(self, name: str) -> Run:
        for s in self.get_pipeline()["steps"]:
            if s["name"] == name:
                if s["run_id"] is None:
                    raise NotFound(f"Step {name!r} has no run yet ({s['state']}).")
                return self.workspace.get_run(s["run_id"])
        raise NotFound(f"The pipeline has no step {name!r}.")

    def cancel(self) -> None:
        """Cancel the pipeline: running steps are canceled, then it ends ``Canceled``."""
        self._info = self.workspace.transport.pipelines.cancel_pipeline_run(
            self.workspace.name, self.id
        )

    def resubmit(self, pipeline_parameters: dict[str, Any] | None = None) -> PipelineRun:
        """Run the same pipeline again; the steps that completed here are not run again."""
        p = self.get_pipeline()
        values = {**p["parameters"], **(pipeline_parameters or {})}
        info = self.workspace.transport.pipelines.submit_pipeline(
            self.workspace.name,
            p["experiment_id"],
            p["spec"],
            values,
            display_name=self.display_name,
            user=_user(),
            resume_of=self.id,
        )
        return PipelineRun(self.workspace, info)

    def wait_for_completion(
        self,
        show_output: bool = True,
        raise_on_error: bool = False,
        timeout: float | None = None,
        out: TextIO | None = None,
    ) -> dict[str, Any]:
        """Wait for the pipeline to end, printing each step's status as it changes."""
        stream = out or sys.stdout
        transport = self.workspace.transport
        transport.host_jobs()
        deadline = None if timeout is None else time.monotonic() + timeout
        shown: dict[str, str] = {}
        while True:
            status = transport.tracking.get_run(self.workspace.name, self.id).status
            if show_output:
                for s in self.get_steps():
                    if shown.get(s["name"]) != s["status"]:
                        shown[s["name"]] = s["status"]
                        stream.write(f"  {s['name']}: {s['status']}\n")
                stream.flush()
            if RunStatus(status).is_terminal:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Pipeline run {self.id} is still {status} after {timeout}s.")
            time.sleep(POLL_SECONDS)
        details = self.get_details()
        if show_output:
            stream.write(f"Pipeline run {self.id} {details['status']}.\n")
        if raise_on_error and details["status"] != RunStatus.COMPLETED.value:
            message = (details.get("error") or {}).get("message", "")
            raise RunFailed(f"Pipeline run {self.id} ended {details['status']}. {message}".strip())
        return details

    def __repr__(self) -> str:
        return (
            f"PipelineRun(experiment={self._info.experiment_name!r}, id={self.id!r}, "
            f"status={self._info.status!r})"
        )


def step_status(step: dict[str, Any]) -> str:
    state = step["state"]
    if state == REUSED:
        return f"Completed (reused from run {step.get('reused_from')})"
    if state == "canceled" and step.get("reason"):
        return str(step["reason"])
    names = {
        "waiting": "NotStarted",
        "submitting": "Queued",
        "running": "Running",
        "completed": "Completed",
        "failed": "Failed",
    }
    return str(names.get(state, state))


# --------------------------------------------------------------- published
class PublishedPipeline:
    """A stored pipeline, run by id: ``submit``, ``POST .../pipelines/{id}/runs``, a schedule."""

    def __init__(self, workspace: Workspace, info: PublishedPipelineInfo) -> None:
        self.workspace = workspace
        self._info = info

    @property
    def id(self) -> str:
        return self._info.id

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def version(self) -> str:
        return self._info.version

    @property
    def description(self) -> str:
        return self._info.description

    @property
    def endpoint(self) -> str | None:
        """The REST address that runs it (for a workspace on a server)."""
        if not self.workspace.url:
            return None
        return (
            f"{self.workspace.url}/api/v1/workspaces/{self.workspace.name}/pipelines/{self.id}/runs"
        )

    @staticmethod
    def get(workspace: Workspace, id: str) -> PublishedPipeline:
        info = workspace.transport.pipelines.get_published_pipeline(workspace.name, id)
        return PublishedPipeline(workspace, info)

    @staticmethod
    def list(workspace: Workspace) -> builtins.list[PublishedPipeline]:
        found = workspace.transport.pipelines.list_published_pipelines(workspace.name)
        return [PublishedPipeline(workspace, i) for i in found]

    def __getattr__(self, name: str) -> Any:
        raise v1.refuse("PublishedPipeline", name, v1.PUBLISHED_PIPELINE)

    def submit(self, *args: Any, **kwargs: Any) -> PipelineRun:
        """``submit(experiment_name, pipeline_parameters=None)``; the cloud service's
        ``submit(workspace, experiment_name, pipeline_parameters=None)`` is taken too."""
        given = kwargs.pop("workspace", args[0] if args else None)
        if isinstance(given, Workspace):
            if given != self.workspace:
                raise InvalidInput(
                    f"Published pipeline {self.id} belongs to workspace "
                    f"{self.workspace.name!r}, not {given.name!r}."
                )
            args = args[1:] if args and args[0] is given else args
        return self._submit(*args, **kwargs)

    @v1.arguments("PublishedPipeline.submit")
    def _submit(
        self, experiment_name: str, pipeline_parameters: dict[str, Any] | None = None
    ) -> PipelineRun:
        return _submit_published(self.workspace, self.id, experiment_name, pipeline_parameters)

    def __repr__(self) -> str:
        return f"PublishedPipeline(name={self.name!r}, version={self.version!r}, id={self.id!r})"


class PipelineEndpoint(metaclass=v1.RefusesV1Names):
    """The published versions of one pipeline name; runs go to its default version."""

    _v1_names = {
        "publish": "pipeline.publish(name, description, version): the versions published "
        "under one name are PipelineEndpoint.get(ws, name)",
    }

    def __init__(self, workspace: Workspace, name: str) -> None:
        self.workspace = workspace
        self.name = name

    @staticmethod
    def get(workspace: Workspace, name: str) -> PipelineEndpoint:
        endpoint = PipelineEndpoint(workspace, name)
        if not endpoint.list_pipelines():
            raise NotFound(f"No pipeline is published as {name!r}.")
        return endpoint

    def list_pipelines(self) -> builtins.list[PublishedPipeline]:
        found = self.workspace.transport.pipelines.list_published_pipelines(
            self.workspace.name, self.name
        )
        return [PublishedPipeline(self.workspace, i) for i in found]

    @property
    def default_version(self) -> str:
        return self.get_default().version

    def get_default(self) -> PublishedPipeline:
        for p in self.list_pipelines():
            if p._info.is_default:
                return p
        raise NotFound(f"Pipeline endpoint {self.name!r} has no default version.")

    def set_default(self, pipeline: PublishedPipeline | str) -> None:
        """Make ``pipeline`` (a published version of this name, or its version string) the
        default."""
        if isinstance(pipeline, str):
            match = [p for p in self.list_pipelines() if p.version == pipeline]
            if not match:
                raise NotFound(f"Pipeline {self.name!r} has no version {pipeline!r}.")
            pipeline = match[0]
        self.workspace.transport.pipelines.set_default_pipeline(
            self.workspace.name, self.name, pipeline.id
        )

    def submit(
        self, experiment_name: str, pipeline_parameters: dict[str, Any] | None = None
    ) -> PipelineRun:
        """Run this name's default version."""
        return _submit_published(self.workspace, self.name, experiment_name, pipeline_parameters)


def _submit_published(
    workspace: Workspace,
    id_or_name: str,
    experiment_name: str,
    pipeline_parameters: dict[str, Any] | None,
) -> PipelineRun:
    """A run of a published pipeline: its id, or a name's default version."""
    workspace.transport.host_jobs()
    info = workspace.transport.pipelines.submit_published(
        workspace.name, id_or_name, experiment_name, pipeline_parameters, user=_user()
    )
    return PipelineRun(workspace, info)


# --------------------------------------------------------------- schedules
class ScheduleRecurrence:
    """Every ``interval`` ``frequency`` ("Minute", "Hour", "Day", "Week"; "Second" too),
    on ticks counted from ``start_time`` (default: now)."""

    @v1.arguments(
        "ScheduleRecurrence",
        {
            k: "Schedule.create(..., cron='30 9 * * 1') for days, hours and minutes "
            "(times are the server's local time)"
            for k in ("time_zone", "hours", "minutes", "week_days", "time_of_day")
        },
    )
    def __init__(
        self, frequency: str, interval: int = 1, start_time: datetime | float | None = None
    ) -> None:
        self.frequency = frequency
        self.interval = interval
        if isinstance(start_time, datetime):
            self.start_ms: int | None = int(start_time.timestamp() * 1000)
        else:
            self.start_ms = None if start_time is None else int(start_time * 1000)


class Schedule:
    """Runs a published pipeline on a recurrence or a cron expression, from the workspace's
    service (one firing per tick, however many servers run; a tick missed while none ran
    fires once when one starts), or once per new version of a registered dataset."""

    def __init__(self, workspace: Workspace, info: ScheduleInfo) -> None:
        self.workspace = workspace
        self._info = info

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def enabled(self) -> bool:
        return self._info.enabled

    @property
    def info(self) -> ScheduleInfo:
        return self._info

    @staticmethod
    @v1.arguments(
        "Schedule.create",
        {
            **{
                k: "on_dataset='name': the pipeline runs once for each new version of a "
                "registered dataset"
                for k in (
                    "datastore",
                    "path_on_datastore",
                    "polling_interval",
                    "data_path_parameter_name",
                )
            },
            "description": "the schedule's name",
            "wait_for_provisioning": "nothing: a schedule is ready once created",
            "wait_timeout": "nothing: a schedule is ready once created",
        },
    )
    def create(
        workspace: Workspace,
        name: str,
        pipeline_id: str,
        experiment_name: str,
        recurrence: ScheduleRecurrence | None = None,
        cron: str | None = None,
        pipeline_parameters: dict[str, Any] | None = None,
        on_dataset: str | None = None,
    ) -> Schedule:
        """Fire from the workspace's server (embedded: while a process hosts its jobs).

        ``on_dataset="digits"`` instead of a recurrence or cron: run the pipeline once for
        each version of the registered dataset ``digits`` registered from now on."""
        info = workspace.transport.pipelines.create_schedule(
            workspace.name,
            name,
            pipeline_id,
            experiment_name,
            parameters=pipeline_parameters,
            frequency=recurrence.frequency if recurrence else None,
            interval=recurrence.interval if recurrence else 1,
            start_time=recurrence.start_ms if recurrence else None,
            cron=cron,
            on_dataset=on_dataset,
        )
        return Schedule(workspace, info)

    @staticmethod
    def get(workspace: Workspace, name: str) -> Schedule:
        return Schedule(workspace, workspace.transport.pipelines.get_schedule(workspace.name, name))

    @staticmethod
    @v1.arguments(
        "Schedule.list",
        {"pipeline_id": "[s for s in Schedule.list(ws) if s.info.pipeline_id == ...]"},
    )
    def list(workspace: Workspace) -> builtins.list[Schedule]:
        found = workspace.transport.pipelines.list_schedules(workspace.name)
        return [Schedule(workspace, s) for s in found]

    def disable(self) -> None:
        self._info = self.workspace.transport.pipelines.set_schedule_enabled(
            self.workspace.name, self.name, False
        )

    def enable(self) -> None:
        self._info = self.workspace.transport.pipelines.set_schedule_enabled(
            self.workspace.name, self.name, True
        )

    def get_firings(self) -> builtins.list[tuple[int, str | None]]:
        """``(tick, run id)`` of every firing, oldest first."""
        return self.workspace.transport.pipelines.schedule_firings(self.workspace.name, self.name)

    def __repr__(self) -> str:
        return f"Schedule(name={self.name!r}, {self._info.rule}, enabled={self.enabled})"


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""
