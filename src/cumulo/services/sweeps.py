"""Sweeps: submit one, and the worker that drives every running sweep to its end.

A sweep is a parent run (kind ``sweep``) with a row in the ``sweeps`` table;
each trial is a child run submitted as a job of its own through ``JobService``,
its hyperparameters passed as script arguments (``--lr 0.01``) and logged as
params. Optuna does the sampling and the pruning (``services/sweep_optuna.py``);
its study is rebuilt from the stored trials whenever it is asked, so nothing
of a sweep lives only in a process's memory.

``SweepWorker`` (one per ``Services``, started like the job scheduler: by the
server's lifespan, or by an embedded process on its first submit) ticks every
running sweep it holds the lease of:

1. trials claimed but not submitted (the process stopped in between) are
   submitted, or adopted when their run exists already;
2. ended trials get their result (the last value of the primary metric);
3. a cancel of the parent cancels every trial, then the parent ends ``Canceled``;
4. the early-termination policy stops running trials that fall behind (the
   policy and its numbers go into the trial's properties, the job is canceled);
5. new trials are asked from Optuna and claimed by number (an insert the
   unique key lets one writer win) while fewer than ``max_concurrent_runs``
   run, until ``max_total_runs`` trials were claimed;
6. once every trial ended the parent ends: ``Completed``, or ``Failed`` when no
   trial logged the primary metric.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from cumulo.core.entities import RunInfo, now_ms
from cumulo.core.errors import CumuloError, InvalidInput, InvalidState, NotFound
from cumulo.core.status import RunStatus
from cumulo.core.sweeps import (
    STOPPED_BY,
    STOPPED_REASON,
    SWEEP_RUN_KIND,
    TRIAL_TAG,
    SweepInfo,
    SweepSpec,
    TrialInfo,
    script_arguments,
)
from cumulo.services.drivers import DriverWorker
from cumulo.services.jobs import JobService
from cumulo.services.ray_heads import head_owner
from cumulo.store.sweeps import SweepStore

if TYPE_CHECKING:  # imported where used: Optuna is slow to import, and only sweeps need it
    from cumulo.services import sweep_optuna


log = logging.getLogger("cumulo.sweeps")

POLL_SECONDS = 0.1
IDLE_SECONDS = 1.0
POLICY_SECONDS = 0.25

# Trial states in the store.
CLAIMED, SUBMITTED = "claimed", "submitted"
COMPLETED, PRUNED, FAILED = "completed", "pruned", "failed"
ACTIVE = (CLAIMED, SUBMITTED)


class SweepService:
    """Submit, read and cancel sweeps; ``SweepWorker`` drives them."""

    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        self.tracking = jobs.tracking
        self.store = SweepStore(jobs.store.db)
        self._listeners: list[Callable[[], None]] = []

    def submit_sweep(
        self,
        workspace: str,
        experiment_id: int,
        spec: dict[str, Any],
        config: dict[str, Any],
        *,
        tags: dict[str, str] | None = None,
        display_name: str | None = None,
        user: str = "",
        submitter_role: str | None = None,
    ) -> RunInfo:
        """Check the sweep and its job config, create the parent run (``Running``) and store it."""
        parsed = SweepSpec.parse(spec)
        if parsed.sampling.seed is None:  # a seed of its own, so a restart draws the same values
            parsed = replace(
                parsed, sampling=replace(parsed.sampling, seed=secrets.randbelow(2**31))
            )
        cfg = self.jobs.check_config(workspace, config)
        warm = self._warm_start(workspace, parsed)
        run = self.tracking.create_run(
            workspace,
            experiment_id,
            display_name=display_name,
            kind=SWEEP_RUN_KIND,
            status=RunStatus.RUNNING.value,
            tags=tags,
            user=user,
            compute_target=cfg.compute_target,
        )
        try:
            policy = parsed.policy
            self.tracking.add_properties(
                workspace,
                run.id,
                {
                    "snapshot": cfg.snapshot,
                    "script": cfg.script,
                    "sweep.primary_metric_name": parsed.primary_metric_name,
                    "sweep.primary_metric_goal": parsed.primary_metric_goal.value,
                    "sweep.sampling": parsed.sampling.kind,
                    "sweep.seed": str(parsed.sampling.seed),
                    "sweep.policy": policy.label if policy else "none",
                    **(
                        {
                            "sweep.primary_metrics": orjson.dumps(
                                [[n, g.value] for n, g in parsed.primary_metrics]
                            ).decode()
                        }
                        if parsed.multi_objective
                        else {}
                    ),
                    **(
                        {
                            "sweep.resume_from": parsed.resume_from,
                            "sweep.warm_start_trials": str(len(warm)),
                        }
                        if parsed.resume_from
                        else {}
                    ),
                    "sweep.max_total_runs": str(parsed.max_total_runs),
                    "sweep.max_concurrent_runs": str(parsed.max_concurrent_runs),
                    "sweep.space": orjson.dumps(
                        {k: repr(v) for k, v in parsed.sampling.space.items()}
                    ).decode(),
                },
            )
            template = {
                "config": cfg.to_dict(),
                "user": user,
                "submitter_role": submitter_role,
                # the earlier sweep's results as they were now: the sampler's start, kept
                "warm_start": [{"internal": w.internal, "values": w.values} for w in warm],
            }
            self.store.create(workspace, run.id, experiment_id, parsed, template)
        except Exception as exc:
            self.tracking.set_run_status(
                workspace, run.id, "Failed", error={"message": f"Submission failed: {exc}"}
            )
            raise
        self._notify()
        return self.tracking.get_run(workspace, run.id)

    def _warm_start(self, workspace: str, spec: SweepSpec) -> list[sweep_optuna.WarmTrial]:
        if spec.resume_from is None:
            return []
        from cumulo.services import sweep_optuna

        try:
            run = self.tracking.find_run(workspace, spec.resume_from)
            earlier = self.store.get(workspace, run.id)
        except NotFound:
            raise InvalidInput(
                f"resume_from: {spec.resume_from!r} is not a sweep of workspace {workspace!r}."
            ) from None
        warm = sweep_optuna.warm_trials(spec, earlier.spec, self.store.trials(earlier.id))
        if not warm:
            raise InvalidInput(
                f"resume_from: sweep {earlier.run_id} has no finished trial in this search "
                "space to start from."
            )
        return warm

    def get_sweep(self, workspace: str, run_id: str) -> dict[str, Any]:
        """The sweep's spec, state and trials (number, params, state, run id, value), and for
        a multi-objective sweep its Pareto front (trial numbers)."""
        info = self.store.get(workspace, run_id)
        trials = self.store.trials(info.id)
        out: dict[str, Any] = {
            "run_id": info.run_id,
            "experiment_id": info.experiment_id,
            "state": info.state,
            "spec": info.spec.to_dict(),
            "trials": [t.to_dict() for t in trials],
        }
        if info.spec.multi_objective:
            from cumulo.services import sweep_optuna

            out["pareto_front"] = sweep_optuna.pareto_front(info.spec, trials)
        return out

    def cancel_sweep(self, workspace: str, run_id: str) -> RunInfo:
        """Ask the sweep to stop: its trials are canceled, then the sweep ends ``Canceled``."""
        self.store.get(workspace, run_id)  # a sweep's run
        run = self.tracking.request_cancel(workspace, run_id)
        self._notify()
        return run

    def on_change(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def _notify(self) -> None:
        for callback in list(self._listeners):
            callback()


class SweepDriver:
    """One process's pass over the sweeps it holds: see the module's docstring."""

    def __init__(
        self, service: SweepService, *, lease_seconds: float | None = None, owner: str | None = None
    ) -> None:
        self.service = service
        self.jobs = service.jobs
        self.tracking = service.tracking
        self.store = service.store
        self.owner = owner or head_owner("sweep")
        self.lease_ms = int((lease_seconds or service.jobs.settings.lease_seconds) * 1000)
        # Histories of ended trials never change: read once per (sweep, trial number).
        self._ended_history: dict[tuple[int, int], dict[int, float]] = {}
        self._evaluated: dict[tuple[int, int], int] = {}  # last step a policy looked at
        self._policy_at: dict[int, float] = {}

    def tick(self) -> int:
        """One pass; returns how many sweeps it drove."""
        sweeps = self.store.acquire(self.owner, self.lease_ms)
        for sweep in sweeps:
            try:
                self.drive(sweep)
            except CumuloError as exc:
                log.warning("sweep %s: %s", sweep.run_id, exc.message)
            except Exception:
                log.exception("sweep %s: pass failed; retrying", sweep.run_id)
        return len(sweeps)

    def release(self) -> None:
        self.store.release(self.owner)

    # ------------------------------------------------------------------ drive
    def drive(self, sweep: SweepInfo) -> None:
        ws = sweep.workspace
        try:
            parent = self.tracking.get_run(ws, sweep.run_id)
        except NotFound:  # the sweep's run was deleted
            self.store.finish(sweep.id)
            return
        trials = self.store.trials(sweep.id)
        # The runs of the trials in flight (every child only when a claimed trial may have
        # one already, after a restart): a pass stays as cheap at trial 1000 as at trial 1.
        claimed = any(t.state == CLAIMED for t in trials)
        children = self._children(
            sweep,
            None if claimed else [t.run_id for t in trials if t.state == SUBMITTED and t.run_id],
        )
        stopping = (
            parent.run_status in (RunStatus.CANCEL_REQUESTED,) or parent.run_status.is_terminal
        )
        trials = [self._place(sweep, parent, t, children, stopping) for t in trials]
        trials = [self._settle(sweep, t, children) for t in trials]
        active = [t for t in trials if t.state in ACTIVE]

        spec = sweep.spec
        expired = spec.max_duration_minutes is not None and (
            now_ms() - sweep.created_at > spec.max_duration_minutes * 60_000
        )
        if stopping or expired:
            for t in active:
                if t.run_id is not None:
                    self._cancel(ws, t.run_id)
            if not active:
                children = self._children(sweep)
                self._end(sweep, parent, trials, children, canceled=stopping, expired=expired)
            return
        if spec.policy is not None and active:
            self._apply_policy(sweep, trials, children)
        while len(trials) < spec.max_total_runs and len(active) < spec.max_concurrent_runs:
            trial = self._claim(sweep, trials)
            if trial is None:
                break
            trial = self._place(sweep, parent, trial, {}, False)
            trials.append(trial)
            active.append(trial)
        if len(trials) >= spec.max_total_runs and not active:
            children = self._children(sweep)
            self._end(sweep, parent, trials, children, canceled=False, expired=False)

    def _children(self, sweep: SweepInfo, run_ids: list[str] | None = None) -> dict[int, RunInfo]:
        """The sweep's trial runs by number: all of them, or those of ``run_ids``."""
        if run_ids is not None and not run_ids:
            return {}
        where = None
        if run_ids is not None:
            where = "attributes.run_id IN (" + ", ".join(f"'{r}'" for r in run_ids) + ")"
        out: dict[int, RunInfo] = {}
        token = None
        while True:
            page = self.tracking.search_runs(
                sweep.workspace,
                None,
                filter=where,
                parent_id=sweep.run_id,
                page_token=token,
                view="all",
            )
            for run in page.runs:
                number = run.tags.get(TRIAL_TAG)
                if number is not None and number.isdigit():
                    out.setdefault(int(number), run)
            token = page.next_page_token
            if not token:
                return out

    def _place(
        self,
        sweep: SweepInfo,
        parent: RunInfo,
        trial: TrialInfo,
        children: dict[int, RunInfo],
        stopping: bool,
    ) -> TrialInfo:
        """A claimed trial gets its run: the one submitted before a stop, or a new job."""
        if trial.state != CLAIMED:
            return trial
        run = children.get(trial.number)
        if run is None and stopping:
            self.store.update_trial(sweep.id, trial.number, state=FAILED)
            return replace(trial, state=FAILED)
        if run is None:
            try:
                run = self._submit(sweep, parent, trial)
            except (InvalidInput, NotFound) as exc:  # e.g. its snapshot or target is gone
                log.warning("sweep %s: trial %s not submitted: %s", sweep.run_id, trial.number, exc)
                self.tracking.add_properties(
                    sweep.workspace, sweep.run_id, {"sweep.submit_error": exc.message}
                )
                self.store.update_trial(sweep.id, trial.number, state=FAILED)
                return replace(trial, state=FAILED)
        self.store.update_trial(sweep.id, trial.number, run_id=run.id, state=SUBMITTED)
        return replace(trial, run_id=run.id, state=SUBMITTED)

    def _submit(self, sweep: SweepInfo, parent: RunInfo, trial: TrialInfo) -> RunInfo:
        template = sweep.job_config
        config = dict(template["config"])
        config["arguments"] = [*config.get("arguments", []), *script_arguments(trial.params)]
        run = self.jobs.submit_job(
            sweep.workspace,
            sweep.experiment_id,
            config,
            tags={TRIAL_TAG: str(trial.number)},
            display_name=f"{parent.display_name}-{trial.number}",
            user=template.get("user") or "",
            submitter_role=template.get("submitter_role"),
            parent_id=sweep.run_id,
        )
        self.tracking.log_batch(
            sweep.workspace, run.id, params={k: str(v) for k, v in trial.params.items()}
        )
        return run

    def _settle(
        self, sweep: SweepInfo, trial: TrialInfo, children: dict[int, RunInfo]
    ) -> TrialInfo:
        """A submitted trial whose run ended gets its state and value."""
        run = children.get(trial.number)
        if trial.state != SUBMITTED or run is None or not run.run_status.is_terminal:
            return trial
        got = [run.metrics.get(name) for name, _ in sweep.spec.objectives]
        value = got[0].value if got[0] is not None else None
        if STOPPED_BY in run.properties:
            state = PRUNED
        elif run.run_status == RunStatus.COMPLETED and all(m is not None for m in got):
            state = COMPLETED
        else:
            state = FAILED
        if not sweep.spec.multi_objective:
            self.store.update_trial(sweep.id, trial.number, state=state, value=value)
            return replace(trial, state=state, value=value)
        values = tuple(m.value for m in got if m is not None) if state == COMPLETED else None
        self.store.update_trial(
            sweep.id, trial.number, state=state, value=value, objective_values=values
        )
        return replace(trial, state=state, value=value, values=values)

    def _claim(self, sweep: SweepInfo, trials: list[TrialInfo]) -> TrialInfo | None:
        from cumulo.services import sweep_optuna

        number = len(trials)
        warm = [
            sweep_optuna.WarmTrial(w["internal"], w["values"])
            for w in sweep.job_config.get("warm_start", [])
        ]
        asked = sweep_optuna.ask(
            sweep.spec, trials, self._histories(sweep, trials, {}), number, warm
        )
        trial = TrialInfo(
            number=number,
            params=asked.params,
            internal=asked.internal,
            system_attrs=asked.system_attrs,
            state=CLAIMED,
        )
        return trial if self.store.claim_trial(sweep.id, trial) else None

    def _cancel(self, workspace: str, run_id: str) -> None:
        with contextlib.suppress(NotFound):  # the trial's run was deleted
            self.jobs.cancel_job(workspace, run_id)

    # ----------------------------------------------------------------- policy
    def _histories(
        self, sweep: SweepInfo, trials: list[TrialInfo], children: dict[int, RunInfo]
    ) -> dict[int, dict[int, float]]:
        """Each trial's primary metric by step (only when a policy needs them)."""
        if sweep.spec.policy is None:
            return {}
        out: dict[int, dict[int, float]] = {}
        for t in trials:
            if t.run_id is None:
                continue
            cached = self._ended_history.get((sweep.id, t.number))
            if cached is not None:
                out[t.number] = cached
                continue
            got = self.tracking.get_metric_history(
                sweep.workspace, t.run_id, sweep.spec.primary_metric_name
            )
            series = dict(zip(got["step"], got["value"], strict=True))
            out[t.number] = series
            if t.state not in ACTIVE:
                self._ended_history[(sweep.id, t.number)] = series
        return out

    def _apply_policy(
        self, sweep: SweepInfo, trials: list[TrialInfo], children: dict[int, RunInfo]
    ) -> None:
        from cumulo.services import sweep_optuna

        last = self._policy_at.get(sweep.id, 0.0)
        if time.monotonic() - last < POLICY_SECONDS:
            return
        self._policy_at[sweep.id] = time.monotonic()
        histories = self._histories(sweep, trials, children)
        policy = sweep.spec.policy
        assert policy is not None
        # Successive halving ranks a trial against what the others reached at each rung, so a
        # trial that ended before the policy saw all its steps gets its rungs recorded too.
        record_ended = policy.kind == "hyperband"
        for i in sorted(range(len(trials)), key=lambda i: trials[i].state in ACTIVE):
            t = trials[i]
            run = children.get(t.number)
            if t.run_id is None:
                continue
            running = (
                t.state == SUBMITTED
                and run is not None
                and run.run_status == RunStatus.RUNNING
                and STOPPED_BY not in run.properties
            )
            if not running and not (record_ended and t.state == COMPLETED):
                continue
            key = (sweep.id, t.number)
            steps = sorted(
                s for s in histories.get(t.number, {}) if s > self._evaluated.get(key, -1)
            )
            if not steps:
                continue
            self._evaluated[key] = steps[-1]
            view = list(trials)
            if not running:  # looked at as if running, so the pruner may record its rungs
                view[i] = replace(t, state=SUBMITTED)
            looked = sweep_optuna.evaluate(sweep.spec, view, histories, t.number, steps)
            if looked.system_attrs != t.system_attrs:  # Hyperband's rungs: kept for later looks
                self.store.update_trial(sweep.id, t.number, system_attrs=looked.system_attrs)
                trials[i] = replace(t, system_attrs=looked.system_attrs)
            if not running:
                continue
            verdict = looked.stop
            if verdict is None:
                continue
            self.tracking.add_properties(
                sweep.workspace,
                t.run_id,
                {
                    STOPPED_BY: policy.label,
                    STOPPED_REASON: orjson.dumps(verdict).decode(),
                },
            )
            log.info("sweep %s: trial %s stopped: %s", sweep.run_id, t.number, verdict)
            self._cancel(sweep.workspace, t.run_id)

    # ------------------------------------------------------------------- end
    def _end(
        self,
        sweep: SweepInfo,
        parent: RunInfo,
        trials: list[TrialInfo],
        children: dict[int, RunInfo],
        *,
        canceled: bool,
        expired: bool,
    ) -> None:
        ws, spec = sweep.workspace, sweep.spec
        metric = spec.primary_metric_name
        names = [n for n, _ in spec.objectives]
        if spec.multi_objective:
            scored = [t for t in trials if t.values is not None]
        else:
            scored = [t for t in trials if t.value is not None]
        missing = [
            t.number
            for t in trials
            if t.number in children and any(n not in children[t.number].metrics for n in names)
        ]
        props: dict[str, str] = {"sweep.trials": str(len(trials))}
        if missing:
            props["sweep.trials_without_metric"] = ", ".join(map(str, missing))
        if expired:
            props["sweep.stopped"] = f"max_duration_minutes ({spec.max_duration_minutes}) reached"
        goal = spec.primary_metric_goal
        best = None
        if spec.multi_objective and scored:
            from cumulo.services import sweep_optuna

            front = set(sweep_optuna.pareto_front(spec, trials))
            props["sweep.pareto_front"] = orjson.dumps(
                [t.run_id for t in trials if t.number in front]
            ).decode()
            scored = []  # no one best trial: the front is the result
        for t in scored:
            if t.value is not None and (best is None or goal.better(t.value, best.value or 0.0)):
                best = t
        if best is not None and best.run_id is not None:
            props["sweep.best_run_id"] = best.run_id
            props["sweep.best_value"] = repr(best.value)
        self.tracking.add_properties(ws, sweep.run_id, props)
        if not parent.run_status.is_terminal:
            if canceled:
                status, error = RunStatus.CANCELED, {"message": "The sweep was canceled."}
            elif "sweep.pareto_front" not in props and not scored and trials:
                logged = sorted({k for r in children.values() for k in r.metrics})
                status, error = (
                    RunStatus.FAILED,
                    {
                        "code": "PrimaryMetricNotLogged",
                        "message": (
                            (
                                f"No trial logged the primary metric {metric!r}"
                                if not spec.multi_objective
                                else "No trial logged every one of the primary metrics "
                                + ", ".join(map(repr, names))
                            )
                            + (
                                f"; they logged: {', '.join(logged)}."
                                if logged
                                else "; they logged no metric."
                            )
                            + f" Log it in the script, e.g. run.log({metric!r}, value)."
                        ),
                    },
                )
            else:
                status, error = RunStatus.COMPLETED, None
            with contextlib.suppress(InvalidState):  # it ended meanwhile
                self.tracking.set_run_status(ws, sweep.run_id, status.value, error=error)
        self.store.finish(sweep.id)
        for t in trials:
            self._ended_history.pop((sweep.id, t.number), None)
            self._evaluated.pop((sweep.id, t.number), None)
        self._policy_at.pop(sweep.id, None)


class SweepWorker(DriverWorker[SweepDriver]):
    """The sweep driver of one ``Services`` object (see ``DriverWorker``)."""

    def __init__(self, service: SweepService, lease_seconds: float | None = None) -> None:
        super().__init__(
            "sweeps",
            lambda: SweepDriver(service, lease_seconds=lease_seconds),
            POLL_SECONDS,
            IDLE_SECONDS,
        )
        self.service = service
        service.on_change(self.wake)
