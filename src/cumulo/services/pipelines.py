"""Pipelines: submit one, read and cancel its run, publish it, schedule it.

A pipeline run is a parent run (kind ``pipeline``) with a row in the
``pipeline_runs`` table and one row per step; each step that runs is a child
run submitted as a job of its own through ``JobService``, on its own compute
target and environment. ``PipelineDriver`` (``services/pipeline_driver.py``)
moves every running pipeline on; schedules fire from ``services/schedules.py``.
Everything a pipeline run needs is in the store, so any process takes it over.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson

from cumulo.core.entities import RunInfo, now_ms
from cumulo.core.errors import InvalidInput
from cumulo.core.pipelines import (
    PIPELINE_RUN_KIND,
    PUBLISHED_TAG,
    PipelineSpec,
    PublishedPipelineInfo,
    ScheduleInfo,
    data_name,
)
from cumulo.core.status import RunStatus
from cumulo.services.jobs import JobService
from cumulo.store.pipelines import PipelineStore


class PipelineService:
    """Submit, read and cancel pipeline runs; publish pipelines; keep schedules."""

    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        self.tracking = jobs.tracking
        self.store = PipelineStore(jobs.store.db)
        self._listeners: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ runs
    def check_spec(self, workspace: str, spec: dict[str, Any]) -> PipelineSpec:
        """The spec with the graph checked and each step's job config checked and completed."""
        parsed = PipelineSpec.parse(spec)
        steps = []
        checked: dict[str, dict[str, Any]] = {}  # steps often share a config
        for step in parsed.steps:
            key = json.dumps(step.config, sort_keys=True, default=str)
            if key not in checked:
                try:
                    cfg = self.jobs.check_config(workspace, {**step.config, "arguments": []})
                except InvalidInput as exc:
                    raise InvalidInput(f"Step {step.name!r}: {exc.message}") from None
                clean = cfg.to_dict()
                clean.pop("arguments", None)
                clean.pop("data_folders", None)
                checked[key] = clean
            steps.append(replace(step, config=checked[key]))
        return replace(parsed, steps=steps)

    def submit_pipeline(
        self,
        workspace: str,
        experiment_id: int,
        spec: dict[str, Any],
        parameters: dict[str, Any] | None = None,
        *,
        continue_on_step_failure: bool | None = None,
        tags: dict[str, str] | None = None,
        display_name: str | None = None,
        user: str = "",
        resume_of: str | None = None,
        submitter_role: str | None = None,
    ) -> RunInfo:
        """Check the pipeline, create its parent run (``Running``) and its steps' rows.

        ``resume_of`` (an earlier run of the same pipeline): its completed steps
        are taken over when unchanged, even those with ``allow_reuse=False``.
        """
        parsed = self.check_spec(workspace, spec)
        if continue_on_step_failure is not None:
            if not isinstance(continue_on_step_failure, bool):
                raise InvalidInput("continue_on_step_failure must be true or false.")
            parsed = replace(parsed, continue_on_step_failure=continue_on_step_failure)
        values = parsed.with_parameters(parameters)
        if resume_of is not None:
            resume_of = self.store.get_run(workspace, resume_of).run_id
        run = self.tracking.create_run(
            workspace,
            experiment_id,
            display_name=display_name,
            kind=PIPELINE_RUN_KIND,
            status=RunStatus.RUNNING.value,
            tags=tags,
            user=user,
        )
        try:
            props = {
                "pipeline.steps": str(len(parsed.steps)),
                "pipeline.continue_on_step_failure": str(parsed.continue_on_step_failure),
            }
            if values:
                props["pipeline.parameters"] = orjson.dumps(values).decode()
            if resume_of:
                props["pipeline.resume_of"] = resume_of
            self.tracking.add_properties(workspace, run.id, props)
            if values:
                self.tracking.log_batch(
                    workspace, run.id, params={k: str(v) for k, v in values.items()}
                )
            template = {"user": user, "submitter_role": submitter_role}
            self.store.create_run(
                workspace, run.id, experiment_id, parsed, values, template, resume_of
            )
        except Exception as exc:
            self.tracking.set_run_status(
                workspace, run.id, "Failed", error={"message": f"Submission failed: {exc}"}
            )
            raise
        self._notify()
        return self.tracking.get_run(workspace, run.id)

    def get_pipeline_run(self, workspace: str, run_id: str) -> dict[str, Any]:
        """The spec, parameter values, state, and each step (state, run, reuse, reason)."""
        info = self.store.get_run(workspace, run_id)
        upstream = info.spec.upstream()
        return {
            "run_id": info.run_id,
            "experiment_id": info.experiment_id,
            "state": info.state,
            "spec": info.spec.to_dict(),
            "parameters": info.parameters,
            "resume_of": info.resume_of,
            "steps": [
                {**s.to_dict(), "upstream": upstream.get(s.name, [])}
                for s in self.store.steps(info.id)
            ],
        }

    def cancel_pipeline_run(self, workspace: str, run_id: str) -> RunInfo:
        """Ask the pipeline to stop: running steps are canceled, then it ends ``Canceled``."""
        self.store.get_run(workspace, run_id)  # a pipeline's run
        run = self.tracking.request_cancel(workspace, run_id)
        self._notify()
        return run

    # ------------------------------------------------------------- publishing
    def publish_pipeline(
        self,
        workspace: str,
        name: str,
        spec: dict[str, Any],
        description: str = "",
        version: str | None = None,
    ) -> PublishedPipelineInfo:
        """Store the pipeline under ``name`` and ``version`` (default: the next number)."""
        data_name(name, "Pipeline")
        parsed = self.check_spec(workspace, spec)
        if version is None:
            taken = {p.version for p in self.store.list_published(workspace, name)}
            n = len(taken) + 1
            while str(n) in taken:
                n += 1
            version = str(n)
        if not isinstance(version, str) or not 0 < len(version) <= 50:
            raise InvalidInput("A pipeline version must be a string of 1 to 50 characters.")
        return self.store.publish(
            workspace, uuid.uuid4().hex, name, version, description or parsed.description, parsed
        )

    def get_published_pipeline(self, workspace: str, pipeline_id: str) -> PublishedPipelineInfo:
        return self.store.get_published(workspace, pipeline_id)

    def list_published_pipelines(
        self, workspace: str, name: str | None = None
    ) -> list[PublishedPipelineInfo]:
        return self.store.list_published(workspace, name)

    def set_default_pipeline(
        self, workspace: str, name: str, pipeline_id: str
    ) -> PublishedPipelineInfo:
        """Make the published pipeline ``pipeline_id`` the default of endpoint ``name``."""
        found = self.store.get_published(workspace, pipeline_id)
        if found.name != name:
            raise InvalidInput(
                f"Published pipeline {pipeline_id} is a version of {found.name!r}, not {name!r}."
            )
        self.store.set_default(workspace, name, pipeline_id)
        return self.store.get_published(workspace, pipeline_id)

    def submit_published(
        self,
        workspace: str,
        pipeline_id: str,
        experiment_name: str,
        parameters: dict[str, Any] | None = None,
        *,
        tags: dict[str, str] | None = None,
        user: str = "",
        submitter_role: str | None = None,
        dataset_versions: dict[str, int] | None = None,
    ) -> RunInfo:
        """Run a published pipeline (by id, or by name for its endpoint's default version).
        ``dataset_versions`` (a schedule's firing) makes the steps that read those datasets
        read those versions (the one a new version fired for)."""
        published = self._resolve(workspace, pipeline_id)
        exp = self.tracking.get_or_create_experiment(workspace, experiment_name)
        spec = published.spec
        if dataset_versions:
            spec = _reading(published.pipeline_spec, dataset_versions).to_dict()
        return self.submit_pipeline(
            workspace,
            exp.id,
            spec,
            parameters,
            tags={PUBLISHED_TAG: published.id, **(tags or {})},
            display_name=f"{published.name}:{published.version}",
            user=user,
            submitter_role=submitter_role,
        )

    def _resolve(self, workspace: str, pipeline_id: str) -> PublishedPipelineInfo:
        for p in self.store.list_published(workspace, pipeline_id):
            if p.is_default:
                return p
        return self.store.get_published(workspace, pipeline_id)

    # -------------------------------------------------------------- schedules
    def create_schedule(
        self,
        workspace: str,
        name: str,
        pipeline_id: str,
        experiment_name: str,
        *,
        parameters: dict[str, Any] | None = None,
        frequency: str | None = None,
        interval: int = 1,
        start_time: int | None = None,
        cron: str | None = None,
        on_dataset: str | None = None,
    ) -> ScheduleInfo:
        """Run a published pipeline on a recurrence (``frequency``, ``interval``), ``cron``,
        or once per new version of the registered dataset ``on_dataset``."""
        data_name(name, "Schedule")
        published = self.store.get_published(workspace, pipeline_id)
        published.pipeline_spec.with_parameters(parameters)  # unknown names fail now
        now = now_ms()
        info = ScheduleInfo(
            workspace=workspace,
            name=name,
            pipeline_id=published.id,
            experiment_name=experiment_name,
            parameters=dict(parameters or {}),
            frequency=None,
            interval=None,
            start_time=None,
            cron=None,
            enabled=True,
            next_fire_at=None,
        )
        if on_dataset is not None:
            if frequency is not None or cron is not None or start_time is not None:
                raise InvalidInput(
                    "A schedule fires on a recurrence, a cron expression or a dataset's new "
                    "versions, one of the three."
                )
            info = replace(
                info,
                on_dataset=on_dataset,
                dataset_version=self._latest_version(workspace, on_dataset),
            )
        else:
            from cumulo.core.schedules import with_rule  # croniter: when a rule is set

            info = with_rule(info, frequency, interval, start_time, cron, now)
        return self.store.create_schedule(info)

    def _latest_version(self, workspace: str, dataset: str) -> int:
        """The newest version of a registered dataset, the one a schedule starts after."""
        return self.jobs.datasets.get_dataset(workspace, dataset).version

    def list_schedules(self, workspace: str) -> list[ScheduleInfo]:
        return self.store.list_schedules(workspace)

    def get_schedule(self, workspace: str, name: str) -> ScheduleInfo:
        return self.store.get_schedule(workspace, name)

    def set_schedule_enabled(self, workspace: str, name: str, enabled: bool) -> ScheduleInfo:
        """Disable a schedule, or enable it again from now on (no catching up on the pause)."""
        info = self.store.get_schedule(workspace, name)
        if not enabled:
            return self.store.update_schedule(workspace, name, enabled=False)
        if info.on_dataset is not None:  # versions registered while it was off do not fire
            latest = self._latest_version(workspace, info.on_dataset)
            return self.store.update_schedule(workspace, name, enabled=True, dataset_version=latest)
        from cumulo.core.schedules import first_tick  # croniter: when a tick is computed

        nxt = first_tick(info, now_ms())
        return self.store.update_schedule(workspace, name, enabled=True, next_fire_at=nxt)

    def schedule_firings(self, workspace: str, name: str) -> list[tuple[int, str | None]]:
        return self.store.firings(workspace, name)

    # ------------------------------------------------------------- listeners
    def on_change(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def _notify(self) -> None:
        for callback in list(self._listeners):
            with contextlib.suppress(Exception):
                callback()


def _reading(spec: PipelineSpec, versions: dict[str, int]) -> PipelineSpec:
    """``spec`` with each step's input of a dataset in ``versions`` moved to that version."""
    steps = []
    for step in spec.steps:
        inputs = [
            {**item, "version": versions[item["dataset"]]}
            if item.get("dataset") in versions
            else item
            for item in step.config.get("inputs") or []
        ]
        steps.append(replace(step, config={**step.config, "inputs": inputs}) if inputs else step)
    return replace(spec, steps=steps)
