"""Jobs: submit a script run, cancel it, read its live logs; targets, environments, snapshots.

``JobService`` is the embedded side of the SDK's ``JobTransport``; the server's
``/api/v1/.../jobs`` routes call the same methods. Dispatching is the
scheduler's (``services/scheduler.py``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from cumulo.compute.base import target_type
from cumulo.core import system_metrics
from cumulo.core.datasets import INPUT_MARK, input_mark
from cumulo.core.entities import RunInfo, now_ms
from cumulo.core.errors import CumuloError, InvalidInput, InvalidState, NotFound
from cumulo.core.jobs import (
    CURRENT_ENVIRONMENT,
    JOB_RUN_KIND,
    LOCAL_TARGET,
    SCRIPT_FAILED,
    ComputeTargetInfo,
    EnvironmentInfo,
    JobConfig,
    JobInfo,
    JobState,
    LogPage,
    LogStream,
    Resources,
    SnapshotInfo,
    arguments,
    data_folders,
    environment_name,
    max_retries,
    max_run_duration,
    priority,
    script_path,
    target_name,
)
from cumulo.core.settings import Settings
from cumulo.core.status import RunStatus, parse_status
from cumulo.services.auth import AuthService
from cumulo.services.datasets import DatasetService
from cumulo.services.environments import EnvironmentService
from cumulo.services.snapshots import SnapshotService
from cumulo.services.tracking import TrackingService
from cumulo.store.db import Database
from cumulo.store.jobs import JobStore, as_seen
from cumulo.store.ray_heads import RayHeadStore

log = logging.getLogger("cumulo.jobs")
# What a job's runner could not deliver before it gave up (see compute.runner).
UNDELIVERED = ("undelivered_metric_points", "undelivered_log_lines")


class JobService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        tracking: TrackingService,
        auth: AuthService,
        datasets: DatasetService,
    ) -> None:
        self.settings = settings
        self.datasets = datasets  # resolves and records a job's dataset inputs
        self.tracking = tracking
        self.auth = auth
        self.meta = tracking.store
        self.store = JobStore(database)
        self.snapshots = SnapshotService(
            self.store, tracking.artifacts, settings.snapshot_max_bytes
        )
        self.environments = EnvironmentService(self.store, settings.env_cache_dir)
        self.home = self.settings.home
        self._listeners: list[Callable[[], None]] = []

    # ------------------------------------------------------------ snapshots
    def take_snapshot(self, workspace: str, source: str | Path) -> SnapshotInfo:
        self.tracking.get_workspace(workspace)
        return self.snapshots.take(workspace, source)

    def put_snapshot(self, workspace: str, stream: IO[bytes]) -> SnapshotInfo:
        self.tracking.get_workspace(workspace)
        return self.snapshots.put(workspace, stream)

    def get_snapshot(self, workspace: str, digest: str) -> SnapshotInfo:
        return self.snapshots.get(workspace, digest)

    def list_snapshots(self, workspace: str) -> list[SnapshotInfo]:
        return self.snapshots.list(workspace)

    def open_snapshot(self, workspace: str, digest: str) -> IO[bytes]:
        return self.snapshots.open(workspace, digest)

    # --------------------------------------------------------- environments
    def register_environment(
        self, workspace: str, name: str, spec: dict[str, Any]
    ) -> EnvironmentInfo:
        return self.environments.register(workspace, name, spec)

    def get_environment(
        self, workspace: str, name: str, version: int | None = None
    ) -> EnvironmentInfo:
        return self.environments.get(workspace, name, version)

    def list_environments(self, workspace: str) -> list[EnvironmentInfo]:
        return self.environments.list(workspace)

    def build_environment(
        self,
        workspace: str,
        name: str,
        version: int | None = None,
        log: Callable[[str], None] | None = None,
    ) -> EnvironmentInfo:
        """Build now (or find the cached build); the log is kept with the environment."""
        info = self.environments.get(workspace, name, version)
        self.environments.build(info, log or (lambda _line: None))
        return self.environments.get(workspace, name, info.version)

    # --------------------------------------------------------------- targets
    def create_compute_target(
        self, workspace: str, name: str, kind: str, config: dict[str, Any] | None = None
    ) -> ComputeTargetInfo:
        target_name(name)
        if name == LOCAL_TARGET:
            raise InvalidInput("'local' is the built-in target; pick another name.")
        declared = target_type(kind)
        clean = declared.parse_config(dict(config or {}))
        if declared.seal is not None:  # secrets are stored encrypted under this server's key
            clean = declared.seal(clean, self.home)
        if declared.on_attach is not None:  # what the machine has, found now
            clean = declared.on_attach(clean, self.home)
        return self.store.create_target(workspace, name, declared.kind, clean)

    def get_compute_target(self, workspace: str, name: str) -> ComputeTargetInfo:
        if name == LOCAL_TARGET:
            self.tracking.get_workspace(workspace)
            return ComputeTargetInfo(workspace, LOCAL_TARGET, "local", {}, 0)
        return self.store.get_target(workspace, name)

    def list_compute_targets(self, workspace: str) -> list[ComputeTargetInfo]:
        return [
            self.get_compute_target(workspace, LOCAL_TARGET),
            *self.store.list_targets(workspace),
        ]

    def delete_compute_target(self, workspace: str, name: str) -> None:
        if name == LOCAL_TARGET:
            raise InvalidInput("The built-in 'local' target cannot be deleted.")
        info = self.store.get_target(workspace, name)
        self.store.delete_target(workspace, name)
        declared = target_type(info.kind)
        if declared.keeps_head:
            # The record of its head goes, whichever server runs the head: that
            # server's lease renewal then finds it gone and stops the head.
            RayHeadStore(self.store.db).release(workspace, name, None)
        if declared.on_delete is not None:
            declared.on_delete(info.config, self.home, f"{workspace}-{name}")

    def compute_status(self, workspace: str, name: str) -> dict[str, Any]:
        """Nodes, their states and the queue of a target."""
        info = self.get_compute_target(workspace, name)
        queued = self.store.list_jobs(workspace, target=name, states=[JobState.QUEUED.value])
        active = self.store.list_jobs(workspace, target=name, states=[JobState.ACTIVE.value])
        pulls = target_type(info.kind).pulls_from_queue
        nodes = self.store.list_nodes(workspace, name) if pulls else []
        counts: dict[str, int] = {}
        for n in nodes:
            counts[n.state] = counts.get(n.state, 0) + 1
        return {
            "name": name,
            "kind": info.kind,
            "config": info.public_config,
            "current_node_count": len(nodes),
            "max_nodes": info.config.get("max_nodes"),
            "node_state_counts": counts,
            "nodes": [n.to_dict() for n in nodes],
            "queue": [j.run_id for j in queued],
            "active": [j.run_id for j in active],
        }

    # ------------------------------------------------------------------ jobs
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
        submitter_role: str | None = None,
        parent_id: str | None = None,
    ) -> RunInfo:
        """Create the run in ``Queued`` with its job; the scheduler picks it up.

        ``submitter_role`` (the role of the token that submitted it) caps the
        job's own token; None when the caller is not token-checked. ``parent_id``
        makes the run a child run (a sweep's trial).
        """
        cfg = self._check_config(workspace, config)
        kind = self.get_compute_target(workspace, cfg.compute_target).kind
        pri, retries = priority(priority_), max_retries(max_retries_)
        run = self.tracking.create_run(
            workspace,
            experiment_id,
            display_name=display_name,
            parent_id=parent_id,
            kind=JOB_RUN_KIND,
            status=RunStatus.QUEUED.value,
            tags=tags,
            user=user,
            compute_target=cfg.compute_target,
        )
        try:
            props = {
                "snapshot": cfg.snapshot,
                "script": cfg.script,
                "environment": cfg.environment
                + (f":{cfg.environment_version}" if cfg.environment_version else ""),
                **(properties or {}),
            }
            self.tracking.add_properties(workspace, run.id, props)
            if cfg.inputs:
                self.datasets.record_inputs(workspace, run.id, cfg.inputs)
            self.store.create_job(
                workspace,
                run.id,
                target=cfg.compute_target,
                kind=kind,
                config=cfg.to_dict(),
                priority=pri,
                max_retries=retries,
                submitter_role=submitter_role,
            )
        except Exception as exc:
            self.set_job_status(
                workspace, run.id, "Failed", error={"message": f"Submission failed: {exc}"}
            )
            raise
        self._notify()
        return self.tracking.get_run(workspace, run.id)

    def check_config(self, workspace: str, config: dict[str, Any]) -> JobConfig:
        """The job config checked and completed, as ``submit_job`` stores it."""
        return self._check_config(workspace, config)

    def _check_config(self, workspace: str, config: dict[str, Any]) -> JobConfig:
        if not isinstance(config, dict):
            raise InvalidInput("A job config must be an object.")
        unknown = set(config) - {f for f in JobConfig.__dataclass_fields__}
        if unknown:
            raise InvalidInput(f"Unknown job config fields: {sorted(unknown)}.")
        snapshot = config.get("snapshot")
        if not isinstance(snapshot, str):
            raise InvalidInput("A job needs a snapshot id; take one from the source directory.")
        self.snapshots.get(workspace, snapshot)
        target = target_name(config.get("compute_target") or LOCAL_TARGET)
        target_info = self.get_compute_target(workspace, target)
        resources = Resources.parse(config.get("resources"))
        self._check_capacity(target_info, resources)
        env_name = config.get("environment") or CURRENT_ENVIRONMENT
        env_version = config.get("environment_version")
        if env_version is not None and (
            isinstance(env_version, bool) or not isinstance(env_version, int)
        ):
            raise InvalidInput(f"environment_version must be an integer, got {env_version!r}.")
        if env_name != CURRENT_ENVIRONMENT:
            environment_name(env_name)
            env_version = self.environments.get(workspace, env_name, env_version).version
        script = script_path(config.get("script"))
        interval = config.get("system_metrics_interval")
        files = {f["path"] for f in self.snapshots.get(workspace, snapshot).files}
        if script not in files:
            raise InvalidInput(
                f"Script {script!r} is not in the snapshot of {config.get('source_directory')!r} "
                "(or it is ignored by .cumuloignore/.gitignore)."
            )
        inputs = config.get("inputs") or []
        if inputs:
            inputs = self.datasets.resolve_inputs(workspace, inputs)
        args = arguments(config.get("arguments"))
        named = {input_mark(i["name"]) for i in inputs}
        loose = [a for a in args if a.startswith(INPUT_MARK) and a not in named]
        if loose:
            raise InvalidInput(f"Argument {loose[0]!r} names no input of the job.")
        folders = data_folders(config.get("data_folders"))
        for digest in folders.values():
            if digest is not None:
                self.snapshots.get(workspace, digest)
        return JobConfig(
            script=script,
            snapshot=snapshot,
            arguments=args,
            inputs=inputs,
            compute_target=target,
            environment=env_name,
            environment_version=env_version,
            max_run_duration_seconds=max_run_duration(config.get("max_run_duration_seconds")),
            resources=resources.to_dict(),
            source_directory=str(config.get("source_directory") or ""),
            system_metrics_interval=(
                None if interval is None else system_metrics.interval(interval)
            ),
            data_folders=folders,
        )

    def _check_capacity(self, target: ComputeTargetInfo, wanted: Resources) -> None:
        """Refuse a request the target can never satisfy, saying what it has."""
        declared = target_type(target.kind).capacity
        why = declared(target.config, self.settings).refusal(wanted) if declared else None
        if why:
            raise InvalidInput(
                f"The job asks for {why}: compute target {target.name!r} can never run it. "
                "Ask for less, or submit it to a target that has more."
            )

    def get_job(self, workspace: str, run_id: str) -> JobInfo:
        return self.store.get_job(workspace, run_id)

    def list_jobs(
        self, workspace: str, target: str | None = None, states: Sequence[str] | None = None
    ) -> list[JobInfo]:
        return self.store.list_jobs(workspace, target=target, states=states)

    def cancel_job(self, workspace: str, run_id: str) -> RunInfo:
        """A queued job is canceled at once; a started one is asked to stop."""
        run = self.tracking.get_run(workspace, run_id)
        if run.run_status.is_terminal:
            return run
        job = self.store.get_job(workspace, run_id)
        if job.state == JobState.QUEUED.value:
            canceled = self._cancel_if_queued(workspace, run_id)
            if canceled is not None:
                return canceled
        run = self.tracking.request_cancel(workspace, run_id)
        self._notify()
        return run

    def set_job_status(
        self, workspace: str, run_id: str, status: str, error: dict[str, Any] | None = None
    ) -> RunInfo:
        """The status a job's scheduler or runner reports (the only way a job run ends)."""
        wanted = parse_status(status)
        if wanted == RunStatus.COMPLETED:
            asked = self.meta.get_run(workspace, run_id).error
            if asked and asked.get(SCRIPT_FAILED):  # the script called run.fail()
                wanted, error = RunStatus.FAILED, asked
        run = self.meta.set_run_status(workspace, run_id, wanted, error=error)
        lost = {k: error[k] for k in UNDELIVERED if error and error.get(k)}
        if lost:  # the run says so too; operators learn it from the server's log
            log.warning("run %s in %s ended with data lost on the way: %s", run_id, workspace, lost)
        if run.run_status.is_terminal:
            self.store.update_job(run_id, state=JobState.DONE.value, release=True)
            self.auth.revoke_job_tokens([run_id])  # the job's credentials end with it
        return run

    # -------------------------------------------------------- a job's course
    # What schedulers and pool nodes do to a job, in one place. Each change holds
    # only while the job's row is as the caller last read it (``as_seen``): of two
    # that act on one job at once, one wins and the other leaves it alone. The run
    # status moves that a run's own rules refuse (a lost job back to ``Queued``, a
    # killed one ``Canceled`` or ``Failed`` whatever it said last) are made here only.

    def lease_next(
        self,
        owner: str,
        ttl_ms: int,
        kinds: Sequence[str],
        *,
        workspace: str | None = None,
        target: str | None = None,
        node: str | None = None,
        exclude: Sequence[str] = (),
    ) -> JobInfo | None:
        """Lease the next queued job of ``kinds`` (highest priority, then first submitted),
        passing over the run ids in ``exclude``."""
        return self.store.lease_next(
            owner,
            ttl_ms,
            kinds=kinds,
            workspace=workspace,
            target=target,
            node=node,
            exclude=exclude,
        )

    def unlease(self, job: JobInfo, owner: str) -> bool:
        """Put back a job just leased that cannot start yet, its attempt not counted."""
        return self.store.unlease(job.run_id, owner, job.attempts)

    def renew_leases(self, owner: str, ttl_ms: int, run_ids: Sequence[str] | None = None) -> int:
        return self.store.renew_leases(owner, ttl_ms, run_ids)

    def take_over_expired(self, owner: str, ttl_ms: int) -> list[JobInfo]:
        """The active jobs whose owner stopped renewing their lease, now ``owner``'s."""
        return self.store.take_over_expired(owner, ttl_ms)

    def still_leased(self, job: JobInfo, ttl_ms: int) -> bool:
        """Renew ``job``'s lease; False when someone moved it since it was read."""
        return self.store.renew_lease(job.run_id, ttl_ms, as_seen(job))

    def record_handle(self, job: JobInfo, handle: dict[str, Any]) -> bool:
        """Record the process that runs this attempt; False when it was given up on meanwhile.

        Whoever owns the lease then (a scheduler that took the job over) watches it by this.
        """
        unrecorded = {"state": JobState.ACTIVE.value, "attempts": job.attempts, "handle": None}
        return self.store.update_job(job.run_id, handle=handle, expect=unrecorded)

    def give_up(self, job: JobInfo) -> bool:
        """Mark the job done and release it, unless someone moved it since ``job`` was read."""
        return self.store.update_job(
            job.run_id, state=JobState.DONE.value, release=True, expect=as_seen(job)
        )

    def release(self, job: JobInfo, owner: str) -> None:
        """Done and released while ``owner`` still holds it (its runner normally did this)."""
        self.store.update_job(job.run_id, state=JobState.DONE.value, release=True, owner=owner)

    def fail(self, job: JobInfo, error: dict[str, Any]) -> bool:
        """Fail a job that could not start (its run may have been canceled meanwhile)."""
        if not self.give_up(job):
            return False
        self._say(job, error["message"])
        try:
            self.set_job_status(job.workspace, job.run_id, RunStatus.FAILED.value, error=error)
        except InvalidState:
            self._canceled(job)
        return True

    def settle_cancel(self, job: JobInfo) -> bool:
        """End a job whose run was asked to cancel before its process could."""
        if not self.give_up(job):
            return False
        self._canceled(job)
        return True

    def end(
        self, job: JobInfo, status: RunStatus, error: dict[str, Any], *, say: bool = True
    ) -> bool:
        """End a job whose process is gone or was killed, whatever its run said last.

        With ``say`` the error's message goes to the job's log too.
        """
        if not self.give_up(job):
            return False
        if say:
            self._say(job, error["message"])
        with contextlib.suppress(InvalidState):
            self.meta.set_run_status(job.workspace, job.run_id, status, error=error, force=True)
        self.auth.revoke_job_tokens([job.run_id])
        return True

    def retry(self, job: JobInfo, owner: str, note: str) -> bool:
        """Queue a lost job again for its next attempt (``note`` goes to its log)."""
        if not self.store.requeue(job.run_id, owner, expect=as_seen(job)):
            return False
        self._say(job, note)
        self.meta.set_run_status(job.workspace, job.run_id, RunStatus.QUEUED, force=True)
        return True

    def cancel_queued(self) -> int:
        """Cancel the queued jobs whose run was asked to cancel; how many."""
        return sum(
            self._cancel_if_queued(ws, run_id) is not None
            for ws, run_id in self.store.queued_with_run_status(RunStatus.CANCEL_REQUESTED.value)
        )

    def _cancel_if_queued(self, workspace: str, run_id: str) -> RunInfo | None:
        if not self.store.update_job(
            run_id, state=JobState.DONE.value, only_state=JobState.QUEUED.value
        ):
            return None
        return self.meta.set_run_status(
            workspace,
            run_id,
            RunStatus.CANCELED,
            error={"code": "Canceled", "message": "The run was canceled before it started."},
            force=True,
        )

    def _canceled(self, job: JobInfo) -> None:
        if not self.meta.get_run(job.workspace, job.run_id).run_status.is_terminal:
            self.meta.set_run_status(
                job.workspace,
                job.run_id,
                RunStatus.CANCELED,
                error={"code": "Canceled", "message": "The run was canceled by a user."},
                force=True,
            )
        self.auth.revoke_job_tokens([job.run_id])

    def _say(self, job: JobInfo, message: str) -> None:
        """A line of the job's system log (a store away a moment does not stop the change)."""
        with contextlib.suppress(CumuloError):
            self.store.append_logs(job.run_id, [(LogStream.SYSTEM.value, message + "\n", now_ms())])

    def issue_job_token(self, job: JobInfo) -> str:
        """A fresh token for this attempt of ``job`` (see ``AuthService.create_job_token``)."""
        self.auth.revoke_job_tokens([job.run_id])  # an earlier attempt's, if any
        _info, token = self.auth.create_job_token(
            job.workspace,
            job.run_id,
            job.submitter_role,
            job.job_config.max_run_duration_seconds,
        )
        return token

    def revoke_ended_job_tokens(self) -> int:
        """Revoke the live tokens of jobs that ended or expired, e.g. while no server ran."""
        ended = []
        at = now_ms()
        for info in self.auth.live_job_tokens():
            assert info.run_id is not None
            job = self.store.find_job(info.run_id)
            if info.expired(at) or job is None or job.state == JobState.DONE.value:
                ended.append(info.run_id)
        return self.auth.revoke_job_tokens(ended)

    # ------------------------------------------------------------------ logs
    def append_logs(self, workspace: str, run_id: str, chunks: Sequence[Sequence[Any]]) -> None:
        self.meta.get_run(workspace, run_id)
        clean = []
        for item in chunks:
            stream, text, at = item
            if stream not in ("stdout", "stderr", "system") or not isinstance(text, str):
                raise InvalidInput("A log chunk is (stream: stdout|stderr|system, text, at_ms).")
            clean.append((str(stream), text, int(at) if at is not None else now_ms()))
        self.store.append_logs(run_id, clean)

    def get_logs(self, workspace: str, run_id: str, after: int = 0, limit: int = 5000) -> LogPage:
        self.meta.get_run(workspace, run_id)
        return self.store.read_logs(run_id, after=after, limit=limit)

    # ------------------------------------------------------------ listeners
    def on_submit(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def _notify(self) -> None:
        for callback in list(self._listeners):
            callback()


class ServiceChannel:
    """The runner's line to the workspace when it can open the store itself."""

    def __init__(self, jobs: JobService, workspace: str, run_id: str) -> None:
        self.jobs = jobs
        self.workspace = workspace
        self.run_id = run_id

    def get_status(self) -> str:
        return self.jobs.meta.get_run(self.workspace, self.run_id).status

    def set_status(self, status: str, error: dict[str, Any] | None = None) -> None:
        self.jobs.set_job_status(self.workspace, self.run_id, status, error=error)

    def append_logs(self, chunks: list[tuple[str, str, int]]) -> None:
        self.jobs.store.append_logs(self.run_id, chunks)

    def upload_file(self, name: str, path: Path) -> None:
        with open(path, "rb") as fh:
            self.jobs.tracking.upload_artifact(self.workspace, self.run_id, name, fh)

    def renew_lease(self, attempt: int, ttl_ms: int) -> bool:
        """Extend the job's lease while it is still active in ``attempt``, whoever owns it.

        The agent running an attempt keeps its job's lease alive this way, so the job
        outlives the server that launched it. False once the job ended, went back to
        the queue or runs in another attempt: nothing to renew any more.
        """
        expect = {"state": JobState.ACTIVE.value, "attempts": attempt}
        return self.jobs.store.renew_lease(self.run_id, ttl_ms, expect)


def require_job(jobs: JobService, workspace: str, run_id: str) -> JobInfo:
    try:
        return jobs.store.get_job(workspace, run_id)
    except NotFound:
        raise NotFound(f"Run {run_id} was not submitted as a job; it has no job logs.") from None
