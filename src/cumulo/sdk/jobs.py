"""Submitting scripts as jobs: ``ScriptRunConfig`` and ``Environment``.

Example::

    from cumulo import Experiment, ScriptRunConfig, Environment, Workspace

    ws = Workspace.create("demo", exist_ok=True)
    env = Environment("sk", pip_requirements=["scikit-learn==1.9.1"])
    config = ScriptRunConfig("src", "train.py", arguments=["--lr", 0.1], environment=env)
    run = Experiment(ws, "iris").submit(config)
    run.wait_for_completion(show_output=True)
"""

from __future__ import annotations

import builtins
import getpass
import io
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cumulo.core.entities import RunInfo
from cumulo.core.errors import CumuloError, InvalidInput, NotFound, RunFailed
from cumulo.core.jobs import (
    CURRENT_ENVIRONMENT,
    LOCAL_TARGET,
    QUEUE_REASON_TAG,
    EnvironmentInfo,
    EnvironmentSpec,
    Resources,
    arguments,
)
from cumulo.core.status import RunStatus
from cumulo.sdk import v1
from cumulo.sdk.compute import ComputeTarget
from cumulo.sdk.datasets import job_inputs
from cumulo.sdk.run import RunTracking, WorkspaceRef

POLL_SECONDS = 0.25


# ---------------------------------------------------------------- environment
class Environment(metaclass=v1.RefusesV1Names):
    """Python packages a job needs, built once into a cached virtual environment.

    ``"current"`` (the default of a ``ScriptRunConfig``) runs in the submitter's
    own interpreter. Example::

        env = Environment("sk", pip_requirements=["scikit-learn==1.9.1"])
        env = Environment.from_pip_requirements("sk", "requirements.txt")
        env.register(ws)                      # version 1, 2... as the spec changes
        env.build(ws)                         # optional: jobs build it on first use

    ``python`` is the Python version (``"3.11"``), not the cloud service's
    ``PythonSection``: list packages in ``pip_requirements``.
    """

    _v1_names = v1.ENVIRONMENT

    @v1.arguments(
        "Environment",
        {
            "pip_version": "a pinned requirement, 'pip==23.3', in the requirements (environments "
            "are built with uv)"
        },
    )
    def __init__(
        self,
        name: str,
        pip_requirements: builtins.list[str] | None = None,
        python: str | None = None,
        environment_variables: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.pip_requirements = list(pip_requirements or [])
        self.python = python
        self.environment_variables = dict(environment_variables or {})
        self.version: int | None = None
        self._info: EnvironmentInfo | None = None

    @classmethod
    def from_pip_requirements(
        cls, name: str, file_path: str | Path | None = None, **kwargs: Any
    ) -> Environment:
        """An environment of the packages a requirements file lists (``file_path``)."""
        file = file_path if file_path is not None else kwargs.pop("file", None)
        if file is None:
            raise InvalidInput("Give the requirements file: file_path='requirements.txt'.")
        path = Path(file)
        if not path.is_file():
            raise NotFound(f"Requirements file {str(path)!r} does not exist.")
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        return cls(name, [ln for ln in lines if ln and not ln.startswith("#")], **kwargs)

    def __getattr__(self, name: str) -> Any:
        raise v1.refuse("Environment", name, v1.ENVIRONMENT)

    @property
    def spec(self) -> EnvironmentSpec:
        return EnvironmentSpec.parse(
            {
                "pip_requirements": self.pip_requirements,
                "python": self.python,
                "environment_variables": self.environment_variables,
            }
        )

    def register(self, workspace: WorkspaceRef) -> Environment:
        """Store this spec as the next version (or find the same spec's version)."""
        info = workspace.transport.jobs.register_environment(
            workspace.name, self.name, self.spec.to_dict()
        )
        return self._adopt(info)

    def _adopt(self, info: EnvironmentInfo) -> Environment:
        self._info, self.version = info, info.version
        return self

    @staticmethod
    def get(workspace: WorkspaceRef, name: str, version: int | None = None) -> Environment:
        info = workspace.transport.jobs.get_environment(workspace.name, name, version)
        spec = info.env_spec
        env = Environment(name, spec.pip_requirements, spec.python, spec.environment_variables)
        return env._adopt(info)

    @staticmethod
    def list(workspace: WorkspaceRef) -> builtins.list[Environment]:
        out = []
        for info in workspace.transport.jobs.list_environments(workspace.name):
            spec = info.env_spec
            env = Environment(info.name, spec.pip_requirements, spec.python)
            out.append(env._adopt(info))
        return out

    @property
    def build_status(self) -> str | None:
        return self._info.build_status if self._info else None

    def build(self, workspace: WorkspaceRef, show_output: bool = True) -> Environment:
        """Build the environment now (reused by every later run), showing the build's progress."""
        self.register(workspace)
        jobs = workspace.transport.jobs
        assert self.version is not None
        if not show_output:
            info = jobs.build_environment(workspace.name, self.name, self.version)
            return self._adopt(info)
        from rich.console import Console

        console = Console(stderr=True)
        with console.status(f"Building environment {self.name}:{self.version}...") as status:

            def _log(line: str) -> None:
                console.print(line, markup=False, highlight=False)
                status.update(f"{self.name}:{self.version}: {line[:70]}")

            info = jobs.build_environment(workspace.name, self.name, self.version, log=_log)
        return self._adopt(info)

    def __repr__(self) -> str:
        return (
            f"Environment(name={self.name!r}, version={self.version}, pip={self.pip_requirements})"
        )


# ------------------------------------------------------------------ configs
@dataclass
class ScriptRunConfig:
    """What to run and where: a script in a source folder, its arguments, target and env.

    A dataset in ``arguments`` (``ds.as_named_input("train").as_download()``) reaches
    the script as the path of a folder holding its files, and the run records it.
    ``resources`` is ``{"cpus": 1, "gpus": 0, "memory_mb": 512}`` (honoured by Ray);
    ``priority`` orders a target's queue (higher first); a job lost by its target is
    retried up to ``max_retries`` times. The run's system metrics (CPU, memory,
    disk, network, GPUs under ``system/``) are sampled every ``system_metrics_interval``
    seconds (None: the workspace's setting, 10 s by default; 0: not at all).
    """

    source_directory: str | Path
    script: str
    arguments: list[Any] = field(default_factory=list)
    compute_target: str | ComputeTarget = LOCAL_TARGET
    environment: Environment | str | None = None
    max_run_duration_seconds: float | None = None
    resources: dict[str, Any] | Resources | None = None
    priority: int = 0
    max_retries: int = 0
    display_name: str | None = None
    system_metrics_interval: float | None = None

    def __getattr__(self, name: str) -> Any:
        raise v1.refuse("ScriptRunConfig", name, v1.SCRIPT_RUN_CONFIG)


# The dataclass's own __init__, checked so that v1 parameters say what to use.
ScriptRunConfig.__init__ = v1.arguments(  # type: ignore[method-assign]
    "ScriptRunConfig",
    {
        "run_config": "ScriptRunConfig's own compute_target= and environment=",
        "command": "script= and arguments=",
        "distributed_job_config": "resources= (CPUs and GPUs for one process; "
        "there is no MPI or torch.distributed launcher here)",
        "docker_runtime_config": "environment= (jobs run in virtual environments, not containers)",
    },
)(ScriptRunConfig.__init__)


def submit(
    ws: WorkspaceRef,
    experiment_id: int,
    config: ScriptRunConfig,
    tags: dict[str, str] | None = None,
) -> RunInfo:
    """Snapshot the code, register the environment, queue the run; returns at once."""
    if not isinstance(config, ScriptRunConfig):
        raise InvalidInput("submit() takes a ScriptRunConfig.")
    ws.transport.host_jobs()
    jobs = ws.transport.jobs
    source = Path(config.source_directory).expanduser()
    from cumulo.compute.snapshots import git_properties

    job_config = prepare_job_config(ws, config)
    info = jobs.submit_job(
        ws.name,
        experiment_id,
        job_config,
        tags=tags,
        properties=git_properties(source),
        display_name=config.display_name,
        user=_user(),
        priority_=config.priority,
        max_retries_=config.max_retries,
    )
    return info


def prepare_job_config(ws: WorkspaceRef, config: ScriptRunConfig) -> dict[str, Any]:
    """Snapshot the code and register the environment: the job config to submit."""
    jobs = ws.transport.jobs
    source = Path(config.source_directory).expanduser()
    snapshot = jobs.take_snapshot(ws.name, source)
    env_name, env_version = CURRENT_ENVIRONMENT, None
    env = config.environment
    if isinstance(env, Environment):
        env.register(ws)
        env_name, env_version = env.name, env.version
    elif isinstance(env, str) and env != CURRENT_ENVIRONMENT:
        name, _, version = env.partition(":")
        env_name, env_version = name, int(version) if version else None
    target = config.compute_target
    args, inputs = job_inputs(config.arguments)
    return {
        "script": config.script,
        "snapshot": snapshot.hash,
        "arguments": arguments(args),
        "inputs": inputs,
        "compute_target": target.name if isinstance(target, ComputeTarget) else target,
        "environment": env_name,
        "environment_version": env_version,
        "max_run_duration_seconds": config.max_run_duration_seconds,
        "resources": Resources.parse(config.resources).to_dict(),
        "source_directory": str(source.resolve()),
        "system_metrics_interval": config.system_metrics_interval,
    }


# ---------------------------------------------------------------- following
def iter_logs(
    run: RunTracking, follow: bool = True, after: int = 0, poll: float = POLL_SECONDS
) -> Iterator[tuple[str, str]]:
    """``(stream, text)`` chunks of a run's logs as they come; ends when the run does."""
    transport = run.workspace.transport
    if follow:
        transport.host_jobs()
    while True:
        status = transport.tracking.get_run(run.workspace.name, run.id).status
        while True:
            page = transport.jobs.get_logs(run.workspace.name, run.id, after=after)
            for chunk in page.chunks:
                yield chunk.stream, chunk.text
            after = page.next_seq
            if not page.chunks:
                break
        if not follow or RunStatus(status).is_terminal:
            return
        time.sleep(poll)


def wait_for_completion(
    run: RunTracking,
    show_output: bool = True,
    raise_on_error: bool = False,
    timeout: float | None = None,
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Wait for the run to end, printing its logs live; returns ``run.get_details()``.

    With ``show_output`` each change of status is printed as it happens (a queued
    run says where it stands in its target's queue), and the job's output as it
    comes. Interrupting the wait leaves the run running, and says how to stop it.
    """
    stream = out or sys.stdout
    deadline = None if timeout is None else time.monotonic() + timeout
    transport = run.workspace.transport
    transport.host_jobs()
    after = 0
    shown = ""
    try:
        while True:
            info = transport.tracking.get_run(run.workspace.name, run.id)
            status = info.status
            page = transport.jobs.get_logs(run.workspace.name, run.id, after=after)
            after = page.next_seq
            if show_output:
                where = _queue_position(run, info) if status == RunStatus.QUEUED.value else ""
                if status + where != shown:
                    shown = status + where
                    stream.write(f"[{run.id[:8]}] {status}{where}\n")
                for chunk in page.chunks:
                    stream.write(chunk.text)
                stream.flush()
            if RunStatus(status).is_terminal and not page.chunks:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Run {run.id} is still {status} after {timeout:.0f}s.")
            if not page.chunks:
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        stream.write(
            f"\nStopped waiting; run {run.id} goes on. Stop it with run.cancel() "
            f"or `cumulo run cancel {run.id[:8]}`.\n"
        )
        raise
    details = run.get_details()
    if show_output:
        stream.write(f"\nRun {run.id} {details['status']}.\n")
        if details.get("error"):
            stream.write(f"Error: {details['error'].get('message', '')}\n")
    if raise_on_error and details["status"] != RunStatus.COMPLETED.value:
        message = (details.get("error") or {}).get("message", "")
        raise RunFailed(f"Run {run.id} ended {details['status']}. {message}".strip())
    return details


def _queue_position(run: RunTracking, info: RunInfo) -> str:
    """`` (2nd of 3 waiting for cpu-pool)``, or nothing when the target does not say."""
    target = info.compute_target or LOCAL_TARGET
    try:
        queue = run.workspace.transport.jobs.compute_status(run.workspace.name, target)["queue"]
    except (CumuloError, KeyError):
        return ""
    if run.id not in queue:
        return ""
    reason = info.tags.get(QUEUE_REASON_TAG)
    why = f"; {reason}" if reason else ""
    return f" (number {queue.index(run.id) + 1} of {len(queue)} waiting for {target}{why})"


def get_logs(run: RunTracking) -> str:
    return "".join(text for _stream, text in iter_logs(run, follow=False))


def restore_snapshot(run: RunTracking, path: str | Path | None = None) -> Path:
    """Unpack the run's code snapshot into ``path`` (default ``./snapshot-<run id>``)."""
    from cumulo.compute.snapshots import extract

    digest = run.get_properties().get("snapshot")
    if not digest:
        raise NotFound(f"Run {run.id} has no code snapshot (it was not submitted as a job).")
    dest = Path(path or f"snapshot-{run.id[:8]}")
    with run.workspace.transport.jobs.open_snapshot(run.workspace.name, digest) as src:
        data = io.BytesIO(src.read())
    return extract(data, dest)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""
