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
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, TextIO, cast

from cumulo.core.entities import RunInfo
from cumulo.core.errors import InvalidInput, NotFound, RunFailed
from cumulo.core.jobs import (
    CURRENT_ENVIRONMENT,
    LOCAL_TARGET,
    ComputeTargetInfo,
    EnvironmentInfo,
    EnvironmentSpec,
    JobInfo,
    LogPage,
    Resources,
    SnapshotInfo,
    arguments,
)
from cumulo.core.status import RunStatus
from cumulo.sdk.compute import ComputeTarget
from cumulo.sdk.progress import CountingReader, transfer

if TYPE_CHECKING:
    from cumulo.sdk.experiment import Experiment
    from cumulo.sdk.http import HttpTransport
    from cumulo.sdk.run import Run
    from cumulo.sdk.workspace import Workspace

POLL_SECONDS = 0.25


# ---------------------------------------------------------------- transport
class JobTransport(Protocol):
    """Job, compute, environment and snapshot calls (embedded ``JobService`` or HTTP)."""

    def put_snapshot(self, workspace: str, stream: IO[bytes]) -> SnapshotInfo: ...
    def get_snapshot(self, workspace: str, digest: str) -> SnapshotInfo: ...
    def list_snapshots(self, workspace: str) -> list[SnapshotInfo]: ...
    def open_snapshot(self, workspace: str, digest: str) -> IO[bytes]: ...
    def register_environment(
        self, workspace: str, name: str, spec: dict[str, Any]
    ) -> EnvironmentInfo: ...
    def get_environment(
        self, workspace: str, name: str, version: int | None = None
    ) -> EnvironmentInfo: ...
    def list_environments(self, workspace: str) -> list[EnvironmentInfo]: ...
    def build_environment(
        self, workspace: str, name: str, version: int | None = None, log: Any = None
    ) -> EnvironmentInfo: ...
    def create_compute_target(
        self, workspace: str, name: str, kind: str, config: dict[str, Any] | None = None
    ) -> ComputeTargetInfo: ...
    def get_compute_target(self, workspace: str, name: str) -> ComputeTargetInfo: ...
    def list_compute_targets(self, workspace: str) -> list[ComputeTargetInfo]: ...
    def delete_compute_target(self, workspace: str, name: str) -> None: ...
    def compute_status(self, workspace: str, name: str) -> dict[str, Any]: ...
    def submit_job(
        self,
        workspace: str,
        experiment_id: int,
        config: dict[str, Any],
        *,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        display_name: str | None = None,
        user: str = "",
        priority_: int = 0,
        max_retries_: int = 0,
    ) -> RunInfo: ...
    def get_job(self, workspace: str, run_id: str) -> JobInfo: ...
    def cancel_job(self, workspace: str, run_id: str) -> RunInfo: ...
    def get_logs(
        self, workspace: str, run_id: str, after: int = 0, limit: int = 5000
    ) -> LogPage: ...


def jobs_of(workspace: Workspace, host_scheduler: bool = True) -> JobTransport:
    """The job calls of a workspace; embedded, this process also hosts a scheduler."""
    transport = workspace._transport
    if workspace.url is not None:
        return HttpJobs(cast("HttpTransport", transport))
    from cumulo.services.context import open_services

    assert workspace._settings is not None
    services = open_services(workspace._settings)
    if host_scheduler:
        services.scheduler.ensure_started()
    return services.jobs


class HttpJobs:
    """``JobTransport`` over a ``cumulo server``'s ``/api/v1`` (its routes: ``server/api/jobs``)."""

    def __init__(self, http: HttpTransport) -> None:
        self.http = http

    def _ws(self, workspace: str) -> str:
        return self.http._ws(workspace)

    def put_snapshot(self, workspace: str, stream: IO[bytes]) -> SnapshotInfo:
        from cumulo.sdk.http import read_chunks

        request = self.http._client.build_request(
            "PUT",
            self._ws(workspace) + "/snapshots",
            content=read_chunks(stream),
            headers={"content-type": "application/zip"},
        )
        import orjson

        return SnapshotInfo.from_dict(orjson.loads(self.http._send(request).content))

    def get_snapshot(self, workspace: str, digest: str) -> SnapshotInfo:
        return SnapshotInfo.from_dict(
            self.http._call("GET", f"{self._ws(workspace)}/snapshots/{digest}")
        )

    def list_snapshots(self, workspace: str) -> list[SnapshotInfo]:
        data = self.http._call("GET", f"{self._ws(workspace)}/snapshots")
        return [SnapshotInfo.from_dict(s) for s in data["snapshots"]]

    def open_snapshot(self, workspace: str, digest: str) -> IO[bytes]:
        request = self.http._client.build_request(
            "GET", f"{self._ws(workspace)}/snapshots/{digest}/zip"
        )
        return io.BytesIO(self.http._send(request).content)

    def register_environment(
        self, workspace: str, name: str, spec: dict[str, Any]
    ) -> EnvironmentInfo:
        body = {"name": name, "spec": spec}
        return EnvironmentInfo.from_dict(
            self.http._call("POST", f"{self._ws(workspace)}/environments", body)
        )

    def get_environment(
        self, workspace: str, name: str, version: int | None = None
    ) -> EnvironmentInfo:
        data = self.http._call(
            "GET", f"{self._ws(workspace)}/environments/{name}", params={"version": version}
        )
        return EnvironmentInfo.from_dict(data)

    def list_environments(self, workspace: str) -> list[EnvironmentInfo]:
        data = self.http._call("GET", f"{self._ws(workspace)}/environments")
        return [EnvironmentInfo.from_dict(e) for e in data["environments"]]

    def build_environment(
        self, workspace: str, name: str, version: int | None = None, log: Any = None
    ) -> EnvironmentInfo:
        data = self.http._call(
            "POST",
            f"{self._ws(workspace)}/environments/{name}/build",
            params={"version": version},
        )
        info = EnvironmentInfo.from_dict(data)
        if log is not None:
            for line in info.build_log.splitlines():
                log(line)
        return info

    def create_compute_target(
        self, workspace: str, name: str, kind: str, config: dict[str, Any] | None = None
    ) -> ComputeTargetInfo:
        body = {"name": name, "kind": kind, "config": config or {}}
        return ComputeTargetInfo.from_dict(
            self.http._call("POST", f"{self._ws(workspace)}/compute", body)
        )

    def get_compute_target(self, workspace: str, name: str) -> ComputeTargetInfo:
        return ComputeTargetInfo.from_dict(
            self.http._call("GET", f"{self._ws(workspace)}/compute/{name}")
        )

    def list_compute_targets(self, workspace: str) -> list[ComputeTargetInfo]:
        data = self.http._call("GET", f"{self._ws(workspace)}/compute")
        return [ComputeTargetInfo.from_dict(t) for t in data["targets"]]

    def delete_compute_target(self, workspace: str, name: str) -> None:
        self.http._call("DELETE", f"{self._ws(workspace)}/compute/{name}")

    def compute_status(self, workspace: str, name: str) -> dict[str, Any]:
        return cast(
            dict[str, Any], self.http._call("GET", f"{self._ws(workspace)}/compute/{name}/status")
        )

    def submit_job(
        self,
        workspace: str,
        experiment_id: int,
        config: dict[str, Any],
        *,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        display_name: str | None = None,
        user: str = "",
        priority_: int = 0,
        max_retries_: int = 0,
    ) -> RunInfo:
        body = {
            "experiment_id": experiment_id,
            "config": config,
            "tags": tags,
            "properties": properties,
            "display_name": display_name,
            "user": user,
            "priority": priority_,
            "max_retries": max_retries_,
        }
        return RunInfo.from_dict(self.http._call("POST", f"{self._ws(workspace)}/jobs", body))

    def get_job(self, workspace: str, run_id: str) -> JobInfo:
        return JobInfo.from_dict(self.http._call("GET", f"{self._ws(workspace)}/jobs/{run_id}"))

    def cancel_job(self, workspace: str, run_id: str) -> RunInfo:
        return RunInfo.from_dict(
            self.http._call("POST", f"{self._ws(workspace)}/jobs/{run_id}/cancel")
        )

    def set_job_status(
        self, workspace: str, run_id: str, status: str, error: dict[str, Any] | None = None
    ) -> RunInfo:
        body = {"status": status, "error": error}
        data = self.http._call("POST", f"{self._ws(workspace)}/jobs/{run_id}/status", body)
        return RunInfo.from_dict(data)

    def get_logs(self, workspace: str, run_id: str, after: int = 0, limit: int = 5000) -> LogPage:
        data = self.http._call(
            "GET",
            f"{self._ws(workspace)}/jobs/{run_id}/logs",
            params={"after": after, "limit": limit},
        )
        return LogPage.from_dict(data)

    def append_logs(self, workspace: str, run_id: str, chunks: Sequence[Sequence[Any]]) -> None:
        body = {"chunks": [list(c) for c in chunks]}
        self.http._call("POST", f"{self._ws(workspace)}/jobs/{run_id}/logs", body)


class HttpChannel:
    """The job runner's line to the workspace through a server (a remote Ray node)."""

    def __init__(self, url: str, token: str | None, workspace: str, run_id: str) -> None:
        from cumulo.sdk.http import HttpTransport

        self.http = HttpTransport(url, token=token)
        self.jobs = HttpJobs(self.http)
        self.workspace = workspace
        self.run_id = run_id

    def get_status(self) -> str:
        return self.http.get_run(self.workspace, self.run_id).status

    def set_status(self, status: str, error: dict[str, Any] | None = None) -> None:
        self.jobs.set_job_status(self.workspace, self.run_id, status, error)

    def append_logs(self, chunks: list[tuple[str, str, int]]) -> None:
        self.jobs.append_logs(self.workspace, self.run_id, chunks)

    def upload_file(self, name: str, path: Path) -> None:
        with open(path, "rb") as fh:
            self.http.upload_artifact(self.workspace, self.run_id, name, fh)


# ---------------------------------------------------------------- environment
class Environment:
    """Python packages a job needs, built once into a cached virtual environment.

    ``"current"`` (the default of a ``ScriptRunConfig``) runs in the submitter's
    own interpreter. Example::

        env = Environment("sk", pip_requirements=["scikit-learn==1.9.1"])
        env = Environment.from_pip_requirements("sk", "requirements.txt")
        env.register(ws)                      # version 1, 2... as the spec changes
        env.build(ws)                         # optional: jobs build it on first use
    """

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
    def from_pip_requirements(cls, name: str, file: str | Path, **kwargs: Any) -> Environment:
        path = Path(file)
        if not path.is_file():
            raise NotFound(f"Requirements file {str(path)!r} does not exist.")
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        return cls(name, [ln for ln in lines if ln and not ln.startswith("#")], **kwargs)

    @property
    def spec(self) -> EnvironmentSpec:
        return EnvironmentSpec.parse(
            {
                "pip_requirements": self.pip_requirements,
                "python": self.python,
                "environment_variables": self.environment_variables,
            }
        )

    def register(self, workspace: Workspace) -> Environment:
        """Store this spec as the next version (or find the same spec's version)."""
        info = jobs_of(workspace, host_scheduler=False).register_environment(
            workspace.name, self.name, self.spec.to_dict()
        )
        return self._adopt(info)

    def _adopt(self, info: EnvironmentInfo) -> Environment:
        self._info, self.version = info, info.version
        return self

    @staticmethod
    def get(workspace: Workspace, name: str, version: int | None = None) -> Environment:
        info = jobs_of(workspace, host_scheduler=False).get_environment(
            workspace.name, name, version
        )
        spec = info.env_spec
        env = Environment(name, spec.pip_requirements, spec.python, spec.environment_variables)
        return env._adopt(info)

    @staticmethod
    def list(workspace: Workspace) -> builtins.list[Environment]:
        out = []
        for info in jobs_of(workspace, host_scheduler=False).list_environments(workspace.name):
            spec = info.env_spec
            env = Environment(info.name, spec.pip_requirements, spec.python)
            out.append(env._adopt(info))
        return out

    @property
    def build_status(self) -> str | None:
        return self._info.build_status if self._info else None

    def build(self, workspace: Workspace, show_output: bool = True) -> Environment:
        """Build the environment now (reused by every later run), showing pip's progress."""
        self.register(workspace)
        jobs = jobs_of(workspace, host_scheduler=False)
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

    ``resources`` is ``{"cpus": 1, "gpus": 0, "memory_mb": 512}`` (honoured by Ray);
    ``priority`` orders a target's queue (higher first); a job lost by its target is
    retried up to ``max_retries`` times.
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


def _snapshot(
    jobs: JobTransport, workspace: str, source: Path, show_progress: bool | None = None
) -> SnapshotInfo:
    take = getattr(jobs, "take_snapshot", None)
    if take is not None:  # embedded: packed straight into the store
        return cast(SnapshotInfo, take(workspace, source))
    from cumulo.services.snapshots import pack

    with tempfile.TemporaryDirectory(prefix="cumulo-snap-") as tmp:
        zip_path = Path(tmp) / "snapshot.zip"
        digest, _files = pack(source, zip_path)
        try:
            return jobs.get_snapshot(workspace, digest)  # the same code is sent once
        except NotFound:
            size = zip_path.stat().st_size
            label = "Uploading the code snapshot"
            with open(zip_path, "rb") as fh, transfer(label, size, show_progress) as done:
                return jobs.put_snapshot(workspace, cast(IO[bytes], CountingReader(fh, done)))


def submit(
    experiment: Experiment, config: ScriptRunConfig, tags: dict[str, str] | None = None
) -> Run:
    """Snapshot the code, register the environment, queue the run; returns at once."""
    from cumulo.sdk.run import Run
    from cumulo.services.snapshots import git_properties

    if not isinstance(config, ScriptRunConfig):
        raise InvalidInput("submit() takes a ScriptRunConfig.")
    ws = experiment.workspace
    jobs = jobs_of(ws)
    source = Path(config.source_directory).expanduser()
    snapshot = _snapshot(jobs, ws.name, source)
    env_name, env_version = CURRENT_ENVIRONMENT, None
    env = config.environment
    if isinstance(env, Environment):
        env.register(ws)
        env_name, env_version = env.name, env.version
    elif isinstance(env, str) and env != CURRENT_ENVIRONMENT:
        name, _, version = env.partition(":")
        env_name, env_version = name, int(version) if version else None
    target = config.compute_target
    job_config = {
        "script": config.script,
        "snapshot": snapshot.hash,
        "arguments": arguments(config.arguments),
        "compute_target": target.name if isinstance(target, ComputeTarget) else target,
        "environment": env_name,
        "environment_version": env_version,
        "max_run_duration_seconds": config.max_run_duration_seconds,
        "resources": Resources.parse(config.resources).to_dict(),
        "source_directory": str(source.resolve()),
    }
    info = jobs.submit_job(
        ws.name,
        experiment.id,
        job_config,
        tags=tags,
        properties=git_properties(source),
        display_name=config.display_name,
        user=_user(),
        priority_=config.priority,
        max_retries_=config.max_retries,
    )
    return Run._from_info(ws, info)


# ---------------------------------------------------------------- following
def iter_logs(
    run: Run, follow: bool = True, after: int = 0, poll: float = POLL_SECONDS
) -> Iterator[tuple[str, str]]:
    """``(stream, text)`` chunks of a run's logs as they come; ends when the run does."""
    jobs = jobs_of(run.workspace, host_scheduler=follow)
    while True:
        status = run.workspace._transport.get_run(run.workspace.name, run.id).status
        while True:
            page = jobs.get_logs(run.workspace.name, run.id, after=after)
            for chunk in page.chunks:
                yield chunk.stream, chunk.text
            after = page.next_seq
            if not page.chunks:
                break
        if not follow or RunStatus(status).is_terminal:
            return
        time.sleep(poll)


def wait_for_completion(
    run: Run,
    show_output: bool = True,
    raise_on_error: bool = False,
    timeout: float | None = None,
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Wait for the run to end, printing its logs live; returns ``run.get_details()``."""
    stream = out or sys.stdout
    deadline = None if timeout is None else time.monotonic() + timeout
    jobs = jobs_of(run.workspace)
    after = 0
    while True:
        status = run.workspace._transport.get_run(run.workspace.name, run.id).status
        page = jobs.get_logs(run.workspace.name, run.id, after=after)
        after = page.next_seq
        if show_output:
            for chunk in page.chunks:
                stream.write(chunk.text)
            stream.flush()
        if RunStatus(status).is_terminal and not page.chunks:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"Run {run.id} is still {status} after {timeout:.0f}s.")
        if not page.chunks:
            time.sleep(POLL_SECONDS)
    details = run.get_details()
    if show_output:
        stream.write(f"\nRun {run.id} {details['status']}.\n")
        if details.get("error"):
            stream.write(f"Error: {details['error'].get('message', '')}\n")
    if raise_on_error and details["status"] != RunStatus.COMPLETED.value:
        message = (details.get("error") or {}).get("message", "")
        raise RunFailed(f"Run {run.id} ended {details['status']}. {message}".strip())
    return details


def get_logs(run: Run) -> str:
    return "".join(text for _stream, text in iter_logs(run, follow=False))


def restore_snapshot(run: Run, path: str | Path | None = None) -> Path:
    """Unpack the run's code snapshot into ``path`` (default ``./snapshot-<run id>``)."""
    from cumulo.services.snapshots import extract

    digest = run.get_properties().get("snapshot")
    if not digest:
        raise NotFound(f"Run {run.id} has no code snapshot (it was not submitted as a job).")
    dest = Path(path or f"snapshot-{run.id[:8]}")
    jobs = jobs_of(run.workspace, host_scheduler=False)
    with jobs.open_snapshot(run.workspace.name, digest) as src:
        data = io.BytesIO(src.read())
    return extract(data, dest)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""
