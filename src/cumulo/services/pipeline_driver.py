"""The worker that moves every running pipeline on, and fires schedules.

``PipelineWorker`` (one per ``Services``, started with the job scheduler: by
the server's lifespan, or by an embedded process on its first submit) ticks:

1. the due schedules fire (``services/schedules.py``);
2. every running pipeline it holds the lease of is driven, step by step in
   the graph's order:

   - a running step whose run ended is settled: completed, its outputs packed
     and stored content-addressed (a snapshot of the folder, so the same
     content is stored once and named by its hash); failed; or canceled;
   - a waiting step whose upstream steps all completed is decided: the same
     fingerprint completed before (or in the run it resumes) -> it is
     ``reused`` without running, with a completed child run that names the
     run it reuses; otherwise it is submitted as a job (a child run) whose
     details say why it ran;
   - a waiting step downstream of a failed one is canceled ("upstream step X
     failed"); without ``continue_on_step_failure`` a failure (or a cancel
     of the pipeline) also cancels every running and waiting step;
   - once every step ended the pipeline's run ends: ``Completed``, ``Failed``
     (naming the failed steps) or ``Canceled``.

Steps move by compare-and-set on their stored state, and a step caught
between being claimed and its job's run being recorded (the process stopped)
is adopted from its run's tag or submitted then; a reused or skipped step,
which runs no job, is recorded in one move from ``waiting`` once its ended
child run exists, and a later pass finds that run by its tag rather than make
another. So a restart loses nothing and makes nothing twice.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from cumulo.core.entities import RunInfo, now_ms
from cumulo.core.errors import CumuloError, InvalidInput, InvalidState, NotFound
from cumulo.core.pipelines import (
    CANCELED,
    COMPLETED,
    DONE_STATES,
    ENDED_STATES,
    FAILED,
    INPUTS_DIR,
    OUTPUTS_DIR,
    REUSED,
    RUNNING,
    STEP_TAG,
    SUBMITTING,
    WAITING,
    PipelineRunInfo,
    StepState,
    fingerprint,
    fingerprint_parts,
    why_ran,
)
from cumulo.core.status import RunStatus
from cumulo.services.drivers import DriverWorker
from cumulo.services.pipelines import PipelineService
from cumulo.services.ray_heads import head_owner
from cumulo.services.schedules import ScheduleFirer

log = logging.getLogger("cumulo.pipelines")

POLL_SECONDS = 0.05
IDLE_SECONDS = 1.0
REUSED_KIND, SKIPPED_KIND = "reused", "skipped"  # kinds of step runs that are no jobs


class PipelineDriver:
    """One process's pass over the pipelines it holds: see the module's docstring."""

    def __init__(
        self,
        service: PipelineService,
        *,
        lease_seconds: float | None = None,
        owner: str | None = None,
    ) -> None:
        self.service = service
        self.jobs = service.jobs
        self.tracking = service.tracking
        self.store = service.store
        self.owner = owner or head_owner("pipeline")
        self.lease_ms = int((lease_seconds or service.jobs.settings.lease_seconds) * 1000)
        self.schedules = ScheduleFirer(service, self.owner, self.lease_ms)

    def tick(self) -> int:
        """One pass; returns how many pipelines it drove."""
        try:
            self.schedules.fire_due()
        except CumuloError as exc:
            log.warning("schedules: %s", exc.message)
        runs = self.store.acquire(self.owner, self.lease_ms)
        for pr in runs:
            try:
                self.drive(pr)
            except CumuloError as exc:
                log.warning("pipeline %s: %s", pr.run_id, exc.message)
            except Exception:
                log.exception("pipeline %s: pass failed; retrying", pr.run_id)
        return len(runs)

    def release(self) -> None:
        self.store.release(self.owner)

    # ----------------------------------------------------------------- drive
    def drive(self, pr: PipelineRunInfo) -> None:
        ws = pr.workspace
        try:
            parent = self.tracking.get_run(ws, pr.run_id)
        except NotFound:  # the pipeline's run was deleted
            self.store.finish(pr.id)
            return
        steps = {s.name: s for s in self.store.steps(pr.id)}
        for name, s in list(steps.items()):
            if s.state == SUBMITTING:
                steps[name] = self._adopt(pr, parent, s)
            elif s.state == RUNNING:
                steps[name] = self._settle(pr, s)
        stopping = parent.run_status == RunStatus.CANCEL_REQUESTED or parent.run_status.is_terminal
        failed = [n for n, s in steps.items() if s.state == FAILED]
        halt = None
        if stopping:
            halt = "the pipeline was canceled"
        elif failed and not pr.spec.continue_on_step_failure:
            halt = f"step {failed[0]} failed and continue_on_step_failure is off"
        upstream = pr.spec.upstream()
        for name in pr.spec.order():
            s = steps[name]
            if s.state == RUNNING and halt is not None and s.run_id:
                with contextlib.suppress(NotFound):
                    self.jobs.cancel_job(ws, s.run_id)
            if s.state != WAITING:
                continue
            ups = [steps[u] for u in upstream[name]]
            bad = next((u for u in ups if u.state in (FAILED, CANCELED)), None)
            if bad is not None and (bad.state == FAILED or "upstream step" in bad.reason):
                origin = bad.name if bad.state == FAILED else _origin(bad)
                steps[name] = self._skip(pr, parent, s, f"Canceled: upstream step {origin} failed.")
            elif halt is not None or bad is not None:
                steps[name] = self._skip(pr, parent, s, f"Canceled: {halt or 'upstream canceled'}.")
            elif all(u.state in DONE_STATES for u in ups):
                steps[name] = self._start(pr, parent, s, steps)
        if all(s.state in ENDED_STATES for s in steps.values()):
            self._end(pr, parent, steps, canceled=stopping)

    # ------------------------------------------------------------------ steps
    def _start(
        self, pr: PipelineRunInfo, parent: RunInfo, s: StepState, steps: dict[str, StepState]
    ) -> StepState:
        step = pr.spec.step(s.name)
        made = pr.spec.producers()
        inputs = {}
        for d in step.inputs:
            outs = steps[made[d]].outputs or {}
            inputs[d] = outs[d]
        try:
            datasets = self._datasets(pr.workspace, step.datasets)
        except (InvalidInput, NotFound) as exc:  # e.g. the version was deleted
            return self._fail_waiting(pr, s, f"its dataset inputs: {exc.message}")
        parts = fingerprint_parts(step, pr.parameters, inputs, datasets)
        fp = fingerprint(parts)
        source = self._resumed(pr, s.name, fp)
        if source is None and step.allow_reuse:
            source = self.store.find_reusable(pr.workspace, fp)
        if source is not None and source.outputs is not None:
            return self._reuse(pr, parent, s, fp, parts, source)
        if not step.allow_reuse:
            reason = "allow_reuse is False"
        else:
            earlier = self.store.last_completed(pr.workspace, pr.experiment_id, s.name)
            reason = why_ran(parts, earlier.parts if earlier else None, s.name)
        now = now_ms()
        if not self.store.move_step(
            pr.id,
            s.name,
            WAITING,
            state=SUBMITTING,
            fingerprint=fp,
            parts=parts,
            reason=reason,
            started_at=now,
        ):
            return s
        claimed = replace(
            s, state=SUBMITTING, fingerprint=fp, parts=parts, reason=reason, started_at=now
        )
        return self._submit(pr, parent, claimed, inputs)

    def _datasets(self, workspace: str, items: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
        """Each dataset input -> its version (``name:N``) and that version's content digest."""
        out = {}
        for item in items:
            info = self.jobs.datasets.get_dataset(workspace, item["dataset"], item["version"])
            out[item["name"]] = {"version": info.ref, "digest": info.digest}
        return out

    def _fail_waiting(self, pr: PipelineRunInfo, s: StepState, reason: str) -> StepState:
        now = now_ms()
        if not self.store.move_step(
            pr.id, s.name, WAITING, state=FAILED, reason=reason, started_at=now, ended_at=now
        ):
            return s
        return replace(s, state=FAILED, reason=reason, started_at=now, ended_at=now)

    def _resumed(self, pr: PipelineRunInfo, name: str, fp: str) -> StepState | None:
        if pr.resume_of is None:
            return None
        try:
            earlier = self.store.get_run(pr.workspace, pr.resume_of)
        except NotFound:
            return None
        for s in self.store.steps(earlier.id):
            if s.name == name and s.state in DONE_STATES and s.fingerprint == fp:
                return s
        return None

    def _submit(
        self, pr: PipelineRunInfo, parent: RunInfo, s: StepState, inputs: dict[str, str]
    ) -> StepState:
        step = pr.spec.step(s.name)
        folders: dict[str, str | None] = {f"{INPUTS_DIR}/{d}": h for d, h in inputs.items()}
        folders.update({f"{OUTPUTS_DIR}/{o}": None for o in step.outputs})
        config = {
            **step.config,
            "arguments": step.resolve(pr.parameters),
            "data_folders": folders,
        }
        try:
            run = self.jobs.submit_job(
                pr.workspace,
                pr.experiment_id,
                config,
                tags={STEP_TAG: s.name},
                properties={
                    "pipeline.step": s.name,
                    "pipeline.fingerprint": s.fingerprint or "",
                    "pipeline.reason": s.reason,
                },
                display_name=s.name,
                user=pr.template.get("user") or "",
                submitter_role=pr.template.get("submitter_role"),
                parent_id=pr.run_id,
            )
        except (InvalidInput, NotFound) as exc:  # e.g. its snapshot or target is gone
            reason = f"{s.reason}; not submitted: {exc.message}"
            self.store.move_step(
                pr.id, s.name, SUBMITTING, state=FAILED, reason=reason, ended_at=now_ms()
            )
            return replace(s, state=FAILED, reason=reason)
        self.store.move_step(pr.id, s.name, SUBMITTING, state=RUNNING, run_id=run.id)
        return replace(s, state=RUNNING, run_id=run.id)

    def _adopt(self, pr: PipelineRunInfo, parent: RunInfo, s: StepState) -> StepState:
        """A step claimed by a process that stopped before it recorded the step's run."""
        page = self.tracking.search_runs(
            pr.workspace, None, parent_id=pr.run_id, tags={STEP_TAG: s.name}, view="all"
        )
        jobs = [r for r in page.runs if r.kind not in (REUSED_KIND, SKIPPED_KIND)]
        if jobs:
            run = jobs[0]
            self.store.move_step(pr.id, s.name, SUBMITTING, state=RUNNING, run_id=run.id)
            return replace(s, state=RUNNING, run_id=run.id)
        step = pr.spec.step(s.name)
        made = pr.spec.producers()
        inputs = {d: (s.parts or {}).get("inputs", {}).get(d) for d in step.inputs}
        if any(v is None for v in inputs.values()):  # read again from the producers
            rows = {r.name: r for r in self.store.steps(pr.id)}
            inputs = {d: (rows[made[d]].outputs or {})[d] for d in step.inputs}
        return self._submit(pr, parent, s, {k: str(v) for k, v in inputs.items()})

    def _reuse(
        self,
        pr: PipelineRunInfo,
        parent: RunInfo,
        s: StepState,
        fp: str,
        parts: dict[str, Any],
        source: StepState,
    ) -> StepState:
        origin = source.reused_from or source.run_id or ""
        now = now_ms()
        run = self._step_run(
            pr,
            s.name,
            REUSED_KIND,
            {
                "pipeline.fingerprint": fp,
                "pipeline.reused_from": origin,
                "pipeline.reason": f"reused from run {origin}: nothing changed",
            },
            RunStatus.COMPLETED,
        )
        done = replace(
            s,
            state=REUSED,
            run_id=run.id,
            fingerprint=fp,
            parts=parts,
            outputs=source.outputs,
            reused_from=origin,
            reason=f"reused from run {origin}",
            started_at=now,
            ended_at=now_ms(),
        )
        return self._record(pr, s, done)

    def _skip(self, pr: PipelineRunInfo, parent: RunInfo, s: StepState, reason: str) -> StepState:
        """A step that will not run: canceled, with a child run that says why."""
        now = now_ms()
        run = self._step_run(
            pr,
            s.name,
            SKIPPED_KIND,
            {"pipeline.reason": reason},
            RunStatus.CANCELED,
            error={"code": "UpstreamFailed", "message": reason},
        )
        done = replace(
            s, state=CANCELED, run_id=run.id, reason=reason, started_at=now, ended_at=now_ms()
        )
        return self._record(pr, s, done)

    def _step_run(
        self,
        pr: PipelineRunInfo,
        name: str,
        kind: str,
        properties: dict[str, str],
        status: RunStatus,
        error: dict[str, Any] | None = None,
    ) -> RunInfo:
        """The ended child run of a step that runs no job (reused or skipped): the one an
        earlier pass made before it could record the step (the process stopped), or a new one.
        """
        page = self.tracking.search_runs(
            pr.workspace, None, parent_id=pr.run_id, tags={STEP_TAG: name}, view="all"
        )
        run = next((r for r in page.runs if r.kind == kind), None)
        if run is None:
            run = self.tracking.create_run(
                pr.workspace,
                pr.experiment_id,
                display_name=name,
                parent_id=pr.run_id,
                kind=kind,
                status=RunStatus.NOT_STARTED.value,
                tags={STEP_TAG: name},
                user=pr.template.get("user") or "",
            )
        self.tracking.add_properties(pr.workspace, run.id, {"pipeline.step": name, **properties})
        if run.run_status.is_terminal:
            return run
        return self.tracking.set_run_status(pr.workspace, run.id, status.value, error=error)

    def _record(self, pr: PipelineRunInfo, s: StepState, done: StepState) -> StepState:
        """The waiting step ``s`` ends as ``done`` without a job, unless it moved meanwhile."""
        values = done.to_dict()
        del values["name"]
        if not self.store.move_step(pr.id, s.name, WAITING, **values):
            return s
        return done

    def _settle(self, pr: PipelineRunInfo, s: StepState) -> StepState:
        """A running step whose run ended: its outputs are stored, or it failed."""
        assert s.run_id is not None
        try:
            run = self.tracking.get_run(pr.workspace, s.run_id)
        except NotFound:
            run = None
        if run is not None and not run.run_status.is_terminal:
            return s
        ended = now_ms()
        if run is not None and run.run_status == RunStatus.COMPLETED:
            step = pr.spec.step(s.name)
            try:
                outputs = {o: self._store_output(pr.workspace, s.run_id, o) for o in step.outputs}
            except CumuloError as exc:
                reason = f"{s.reason}; its outputs could not be stored: {exc.message}"
                self.store.move_step(
                    pr.id, s.name, RUNNING, state=FAILED, reason=reason, ended_at=ended
                )
                return replace(s, state=FAILED, reason=reason, ended_at=ended)
            self.store.move_step(
                pr.id, s.name, RUNNING, state=COMPLETED, outputs=outputs, ended_at=ended
            )
            if outputs:
                self.tracking.add_properties(
                    pr.workspace,
                    s.run_id,
                    {f"pipeline.output.{o}": h for o, h in outputs.items()},
                )
            return replace(s, state=COMPLETED, outputs=outputs, ended_at=ended)
        state = CANCELED if run is not None and run.run_status == RunStatus.CANCELED else FAILED
        message = ((run.error or {}).get("message") if run is not None else None) or (
            "its run was deleted" if run is None else f"its run ended {run.status}"
        )
        reason = f"{s.reason}; {state}: {message}" if s.reason else message
        self.store.move_step(pr.id, s.name, RUNNING, state=state, reason=reason, ended_at=ended)
        return replace(s, state=state, reason=reason, ended_at=ended)

    def _store_output(self, workspace: str, run_id: str, name: str) -> str:
        """Pack the run's ``outputs/<name>`` folder and store it once per content; its hash."""
        prefix = f"{OUTPUTS_DIR}/{name}"
        with tempfile.TemporaryDirectory(prefix="cumulo-data-") as tmp:
            root = Path(tmp)
            for f in self.tracking.list_artifacts(workspace, run_id, prefix, recursive=True):
                if f.is_dir:
                    continue
                rel = f.path[len(prefix) + 1 :] if f.path.startswith(prefix + "/") else f.path
                dest = root / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with (
                    self.tracking.open_artifact(workspace, run_id, f"{prefix}/{rel}") as src,
                    open(dest, "wb") as out,
                ):
                    while chunk := src.read(1024 * 1024):
                        out.write(chunk)
            return self.jobs.snapshots.take(workspace, root).hash

    def _end(
        self,
        pr: PipelineRunInfo,
        parent: RunInfo,
        steps: dict[str, StepState],
        *,
        canceled: bool,
    ) -> None:
        failed = [n for n, s in steps.items() if s.state == FAILED]
        reused = [n for n, s in steps.items() if s.state == REUSED]
        self.tracking.add_properties(
            pr.workspace,
            pr.run_id,
            {
                "pipeline.reused_steps": str(len(reused)),
                "pipeline.ran_steps": str(sum(s.state == COMPLETED for s in steps.values())),
            },
        )
        if not parent.run_status.is_terminal:
            error: dict[str, Any] | None = None
            if canceled:
                status, error = RunStatus.CANCELED, {"message": "The pipeline was canceled."}
            elif failed or any(s.state == CANCELED for s in steps.values()):
                names = ", ".join(failed) or "none"
                status = RunStatus.FAILED
                error = {"code": "StepFailed", "message": f"Pipeline steps failed: {names}."}
            else:
                status = RunStatus.COMPLETED
            with contextlib.suppress(InvalidState):
                self.tracking.set_run_status(pr.workspace, pr.run_id, status.value, error=error)
        self.store.finish(pr.id)


def _origin(s: StepState) -> str:
    """The failed step a canceled one names ("upstream step X failed")."""
    marker = "upstream step "
    if marker in s.reason:
        return s.reason.split(marker, 1)[1].split(" ", 1)[0]
    return s.name


class PipelineWorker(DriverWorker[PipelineDriver]):
    """The pipeline driver of one ``Services`` object (see ``DriverWorker``)."""

    def __init__(self, service: PipelineService, lease_seconds: float | None = None) -> None:
        super().__init__(
            "pipelines",
            lambda: PipelineDriver(service, lease_seconds=lease_seconds),
            POLL_SECONDS,
            IDLE_SECONDS,
        )
        self.service = service
        service.on_change(self.wake)
        service.jobs.on_submit(self.wake)
