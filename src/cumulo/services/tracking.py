"""Tracking: workspaces, experiments, runs, metrics, params, tags and run artifacts."""

from __future__ import annotations

import bisect
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from cumulo.core import system_metrics, validation
from cumulo.core.downsample import Series, from_buckets, lttb
from cumulo.core.entities import (
    ExperimentInfo,
    FileInfo,
    MetricRecord,
    RunInfo,
    RunPage,
    WorkspaceInfo,
    now_ms,
)
from cumulo.core.errors import InvalidInput, NotFound
from cumulo.core.status import RunStatus, can_move, parse_status
from cumulo.services.metric_points import check_columns, check_rows
from cumulo.store.artifacts import ArtifactStore
from cumulo.store.metadata import MetadataStore

RECORD_KINDS = ("list", "row", "table", "image")
MAX_RUN_KEYS = 2000  # keys of each kind listed for an experiment (column pickers)
MAX_INTERVAL_POINTS = 25_000  # values of one run a sampled history answers at most


def run_prefix(workspace: str, run_id: str) -> str:
    return f"{workspace}/runs/{run_id}"


class TrackingService:
    def __init__(self, store: MetadataStore, artifacts: ArtifactStore) -> None:
        self.store = store
        self.artifacts = artifacts
        self._charts = _ChartCache()

    # ------------------------------------------------------------ workspaces
    def create_workspace(
        self, name: str, exist_ok: bool = False, description: str = ""
    ) -> WorkspaceInfo:
        return self.store.create_workspace(name, description=description, exist_ok=exist_ok)

    def get_workspace(self, name: str) -> WorkspaceInfo:
        return self.store.get_workspace(name)

    def list_workspaces(self) -> list[WorkspaceInfo]:
        return self.store.list_workspaces()

    # ----------------------------------------------------------- experiments
    def get_or_create_experiment(self, workspace: str, name: str) -> ExperimentInfo:
        return self.store.get_or_create_experiment(workspace, name)

    def create_experiment(
        self, workspace: str, name: str, tags: dict[str, str] | None = None
    ) -> ExperimentInfo:
        return self.store.create_experiment(workspace, name, tags)

    def get_experiment(
        self, workspace: str, experiment_id: int | None = None, name: str | None = None
    ) -> ExperimentInfo:
        if experiment_id is None and name is None:
            raise InvalidInput("Give an experiment id or name.")
        return self.store.get_experiment(workspace, experiment_id=experiment_id, name=name)

    def list_experiments(
        self, workspace: str, include_archived: bool = False, view: str = "active"
    ) -> list[ExperimentInfo]:
        return self.store.list_experiments(workspace, include_archived=include_archived, view=view)

    def update_experiment(
        self,
        workspace: str,
        experiment_id: int,
        name: str | None = None,
        archived: bool | None = None,
        deleted: bool | None = None,
    ) -> ExperimentInfo:
        return self.store.update_experiment(
            workspace, experiment_id, name=name, archived=archived, deleted=deleted
        )

    def set_experiment_tag(
        self, workspace: str, experiment_id: int, key: str, value: str | None
    ) -> None:
        self.store.set_experiment_tag(workspace, experiment_id, key, value)

    def delete_experiment(self, workspace: str, experiment_id: int) -> list[str]:
        """Delete an experiment, its runs and their files, for good."""
        run_ids = self.store.delete_experiment(workspace, experiment_id)
        for run_id in run_ids:
            self.artifacts.delete(run_prefix(workspace, run_id))
        return run_ids

    # ------------------------------------------------------------------ runs
    def create_run(
        self,
        workspace: str,
        experiment_id: int,
        display_name: str | None = None,
        parent_id: str | None = None,
        kind: str = "interactive",
        status: str = RunStatus.RUNNING.value,
        tags: dict[str, str] | None = None,
        user: str = "",
        compute_target: str | None = None,
        start_time: int | None = None,
    ) -> RunInfo:
        return self.store.create_run(
            workspace,
            experiment_id,
            display_name=display_name,
            parent_id=parent_id,
            kind=kind,
            status=parse_status(status),
            tags={k: str(v) for k, v in (tags or {}).items()},
            user=user,
            compute_target=compute_target,
            start_time=start_time,
        )

    def reading(self) -> contextlib.AbstractContextManager[None]:
        """Reads inside (of runs, their lineage, anything in this store) share one
        transaction: one state, and one begin and commit for a request's reads."""
        return self.store.db.reading()

    def get_run(self, workspace: str, run_id: str) -> RunInfo:
        return self.store.get_run(workspace, run_id)

    def find_run(self, workspace: str, id_or_start: str) -> RunInfo:
        """The run whose id is ``id_or_start`` or uniquely starts with it (6+ characters)."""
        return self.store.find_run(workspace, id_or_start)

    def search_runs(
        self,
        workspace: str,
        experiment_ids: Sequence[int] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
        statuses: Sequence[str] | None = None,
        tags: dict[str, str | None] | None = None,
        parent_id: str | None = None,
        top_level_only: bool = False,
        view: str = "active",
    ) -> RunPage:
        if view not in ("active", "deleted", "all"):
            raise InvalidInput(f"view must be active, deleted or all, got {view!r}.")
        return self.store.search_runs(
            workspace,
            experiment_ids,
            filter=filter,
            order_by=order_by,
            max_results=max_results,
            page_token=page_token,
            statuses=[parse_status(s).value for s in statuses] if statuses else None,
            tags=tags,
            parent_id=parent_id,
            top_level_only=top_level_only,
            view=view,
        )

    def run_keys(self, workspace: str, experiment_id: int) -> dict[str, list[str]]:
        """``{"metrics": [...], "params": [...], "tags": [...]}``: the keys the runs use."""
        return self.store.run_keys(workspace, experiment_id, MAX_RUN_KEYS)

    def set_run_status(
        self,
        workspace: str,
        run_id: str,
        status: str,
        error: dict[str, Any] | None = None,
        at: int | None = None,
    ) -> RunInfo:
        """Change a run's status, as a user or a script asks.

        A submitted job ends when its script does (``JobService.set_job_status``),
        so a script that ends its own run (``mlflow.end_run()`` at exit,
        ``run.complete()``) leaves it running until the runner has stored the
        last logs and outputs. ``run.fail()`` from the script is remembered and
        makes the job fail when it ends; a cancel asks the job to stop.
        """
        wanted = parse_status(status)
        rule = _end_with_the_job if wanted.is_terminal else None
        return self.store.set_run_status(workspace, run_id, wanted, error=error, at=at, rule=rule)

    def request_cancel(self, workspace: str, run_id: str) -> RunInfo:
        """Ask an active run's owner (its job, sweep or pipeline) to stop it; a run that
        has ended or is ending is returned as it is (decided in the change's transaction)."""
        return self.store.set_run_status(
            workspace, run_id, RunStatus.CANCEL_REQUESTED, rule=_unless_past_it
        )

    def update_run(
        self,
        workspace: str,
        run_id: str,
        display_name: str | None = None,
        deleted: bool | None = None,
    ) -> RunInfo:
        return self.store.update_run(workspace, run_id, display_name=display_name, deleted=deleted)

    def delete_run(self, workspace: str, run_id: str) -> list[str]:
        """Delete a run, its child runs and all their files, for good."""
        run_ids = self.store.delete_run(workspace, run_id)
        for rid in run_ids:
            self.artifacts.delete(run_prefix(workspace, rid))
        return run_ids

    # --------------------------------------------------------------- logging
    def log_batch(
        self,
        workspace: str,
        run_id: str,
        metrics: Iterable[Sequence[Any]] | Mapping[str, Sequence[Any]] = (),
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        records: Iterable[dict[str, Any] | MetricRecord] = (),
        batch_id: str | None = None,
    ) -> bool:
        """Validate and write a batch at once; nothing is written if any item is invalid.

        ``metrics`` items are ``(key, value, step, timestamp_ms)``; step and
        timestamp may be None (then step 0 / now). ``metrics`` may also be
        columns, ``{"key": [...], "value": [...], "step": [...], "timestamp":
        [...]}``, checked faster by the same rules. Returns False if this
        ``batch_id`` was already written (a retry), True otherwise.
        """
        now = now_ms()
        if isinstance(metrics, Mapping):
            points = check_columns(metrics, now)
        else:
            points = check_rows(metrics, now)
        clean_params = {
            validation.key(k, "param"): validation.param_value(v) for k, v in (params or {}).items()
        }
        clean_tags = {
            validation.key(k, "tag"): validation.tag_value(v) for k, v in (tags or {}).items()
        }
        clean_records = [_record(r, now) for r in records]
        if batch_id is not None and (not isinstance(batch_id, str) or not 0 < len(batch_id) <= 64):
            raise InvalidInput("A batch id must be a string of 1 to 64 characters.")
        return self.store.log_batch(
            workspace,
            run_id,
            metrics=points,
            params=clean_params,
            tags=clean_tags,
            records=clean_records,
            batch_id=batch_id,
        )

    def set_tags(self, workspace: str, run_id: str, tags: dict[str, Any]) -> None:
        clean = {validation.key(k, "tag"): validation.tag_value(v) for k, v in tags.items()}
        self.store.set_tags(workspace, run_id, clean)

    def delete_tags(self, workspace: str, run_id: str, keys: list[str]) -> None:
        self.store.delete_tags(workspace, run_id, [validation.key(k, "tag") for k in keys])

    def add_properties(self, workspace: str, run_id: str, properties: dict[str, Any]) -> None:
        clean = {
            validation.key(k, "property"): validation.tag_value(v) for k, v in properties.items()
        }
        self.store.add_properties(workspace, run_id, clean)

    # --------------------------------------------------------------- reading
    def get_metric_history(
        self,
        workspace: str,
        run_id: str,
        key: str,
        start_step: int | None = None,
        end_step: int | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> dict[str, list[Any]]:
        return self.store.metric_history(
            workspace,
            run_id,
            key,
            start_step=start_step,
            end_step=end_step,
            offset=offset,
            limit=limit,
        )

    def get_metric_history_interval(
        self,
        workspace: str,
        run_ids: Sequence[str],
        key: str,
        max_results: int,
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[tuple[str, int, int, float]]:
        """``(run_id, step, timestamp, value)`` of one metric of several runs at no more than
        about ``max_results`` steps, the same steps for every run: chosen evenly from the
        steps any of the runs logged in ``[start_step, end_step]`` (from 0 to the last
        step when neither is given), plus each run's own first and last step when they
        fall in that range (as MLflow keeps them), and the range's last step.
        Every value at a chosen step is kept (up to ``MAX_INTERVAL_POINTS`` a run),
        ordered by run as given, then step, time and value. This is how MLflow's web UI
        samples the series of the runs it compares (``get-history-bulk-interval``)."""
        if (start_step is None) != (end_step is None):
            raise InvalidInput(
                "If either start step or end step are specified, both must be specified."
            )
        histories = {
            run_id: self.store.metric_history(workspace, run_id, key) for run_id in run_ids
        }
        steps = sample_steps(
            [h["step"] for h in histories.values()], max(1, max_results), start_step, end_step
        )
        out: list[tuple[str, int, int, float]] = []
        for run_id, h in histories.items():
            points = sorted(
                (s, t, v)
                for s, t, v in zip(h["step"], h["timestamp"], h["value"], strict=True)
                if s in steps
            )
            out += [(run_id, s, t, v) for s, t, v in points[:MAX_INTERVAL_POINTS]]
        return out

    def get_metric_chart(
        self,
        workspace: str,
        run_id: str,
        key: str,
        axis: str = "step",
        start: int | None = None,
        end: int | None = None,
        points: int = 2000,
        run: RunInfo | None = None,
    ) -> dict[str, Any]:
        """A series sized for a chart of about ``points`` points over ``axis`` in a range.

        ``run``: the run as just read from this workspace (a chart of many runs
        has them from its search), so it is not looked up once more.

        Short ranges come whole; longer ones by largest-triangle-three-buckets;
        very long ones (more than ``8 * points``) as min/max buckets computed
        by the store. NaN values come as None (a gap in the line).
        """
        if axis not in ("step", "timestamp"):
            raise InvalidInput(f"A chart's axis is 'step' or 'timestamp', got {axis!r}.")
        if not 16 <= points <= 20_000:
            raise InvalidInput(f"Ask for 16 to 20000 chart points, got {points}.")
        # A finished run's series no longer change: its charts are kept (until it resumes).
        if run is None or run.id != run_id or run.workspace != workspace:
            run = self.store.get_run(workspace, run_id)
        cache_key = (workspace, run_id, key, axis, start, end, points, run.ended_at)
        finished = RunStatus(run.status).is_terminal
        if finished and (found := self._charts.get(cache_key)) is not None:
            return found
        count, shape, rows = self.store.metric_chart_rows(
            workspace, run_id, key, axis=axis, start=start, end=end,
            max_rows=8 * points, buckets=points // 2,
        )  # fmt: skip
        if shape == "points":
            xs, ys = [r[0] for r in rows], [r[1] for r in rows]
            series = lttb(xs, ys, points) if count > points else Series(xs, ys)
        else:
            series = from_buckets([(*r, None, None) for r in rows])
        chart = {
            "key": key,
            "axis": axis,
            "count": count,
            "downsampled": len(series) < count,
            "x": series.x,
            "y": series.y,
        }
        if finished:
            self._charts.put(cache_key, chart)
        return chart

    def get_metric_summary(self, workspace: str, run_id: str, key: str) -> dict[str, Any]:
        """A series' smallest, largest and last value and its length (NaN left out of
        the smallest and largest; None where no value is a number)."""
        count, low, high, last = self.store.metric_summary(workspace, run_id, key)
        return {"count": count, "min": low, "max": high, "last": last}

    def get_run_records(self, workspace: str, run_id: str) -> list[MetricRecord]:
        """The run's list, row, table and image records, in the order they were logged."""
        return self.store.records(workspace, run_id)

    def get_run_metrics(self, workspace: str, run_id: str) -> dict[str, Any]:
        """Every series of a run in columns, plus its list/row/table/image records."""
        series = {
            key: self.store.metric_history(workspace, run_id, key)
            for key in self.store.metric_keys(workspace, run_id)
        }
        records = [r.to_dict() for r in self.store.records(workspace, run_id)]
        return {"series": series, "records": records}

    # ------------------------------------------------------------- artifacts
    def upload_artifact(self, workspace: str, run_id: str, path: str, stream: IO[bytes]) -> int:
        self.store.get_run(workspace, run_id)  # the run exists in this workspace
        rel = validation.artifact_path(path)
        return self.artifacts.put_stream(run_prefix(workspace, run_id), rel, stream)

    def list_artifacts(
        self, workspace: str, run_id: str, path: str = "", recursive: bool = False
    ) -> list[FileInfo]:
        self.store.get_run(workspace, run_id)
        rel = validation.artifact_path(path, allow_root=True)
        return self.artifacts.list(run_prefix(workspace, run_id), rel, recursive=recursive)

    def open_artifact(self, workspace: str, run_id: str, path: str) -> IO[bytes]:
        self.store.get_run(workspace, run_id)
        rel = validation.artifact_path(path)
        return self.artifacts.open(run_prefix(workspace, run_id), rel)

    def artifact_size(self, workspace: str, run_id: str, path: str) -> int:
        self.store.get_run(workspace, run_id)
        return self.artifacts.size(run_prefix(workspace, run_id), validation.artifact_path(path))

    def delete_artifact(self, workspace: str, run_id: str, path: str) -> None:
        self.store.get_run(workspace, run_id)
        rel = validation.artifact_path(path)
        if not self.artifacts.exists(run_prefix(workspace, run_id), rel):
            raise NotFound(f"Artifact {rel!r} does not exist.")
        self.artifacts.delete(run_prefix(workspace, run_id), rel)


class _ChartCache:
    """The last charts read, by their query; a small LRU shared by a process's requests."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], chart: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = chart
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def _record(item: dict[str, Any] | MetricRecord, now: int) -> MetricRecord:
    r = item if isinstance(item, MetricRecord) else MetricRecord.from_dict(item)
    system_metrics.check_name(validation.key(r.name, "metric"))
    if r.kind not in RECORD_KINDS:
        raise InvalidInput(f"Record kind must be one of {', '.join(RECORD_KINDS)}, got {r.kind!r}.")
    return MetricRecord(r.name, r.kind, r.value, r.timestamp or now, r.description or "")


def sample_steps(
    runs: Sequence[Sequence[int]], max_results: int, start: int | None, end: int | None
) -> set[int]:
    """The steps a sampled history of several runs keeps (see
    ``TrackingService.get_metric_history_interval``)."""
    every = sorted({step for steps in runs for step in steps})
    if start is None or end is None:
        start, end = 0, every[-1] if every else 0
    ends = {bound for steps in runs if steps for bound in (min(steps), max(steps))}
    kept = {step for step in ends if start <= step <= end}
    first, stop = bisect.bisect_left(every, start), bisect.bisect_right(every, end)
    if stop - first <= max_results:
        return kept | set(every[first:stop])
    interval = (stop - first) / max_results
    kept.update(every[first + int(i * interval)] for i in range(max_results))
    kept.add(every[stop - 1])
    return kept


def _end_with_the_job(
    kind: str, current: RunStatus, wanted: RunStatus, error: dict[str, Any] | None
) -> tuple[RunStatus, dict[str, Any] | None]:
    """A job's run that its script ends: complete waits for the job, fail is remembered
    for it, and anything else asks the job to stop."""
    from cumulo.core.jobs import JOB_RUN_KIND, SCRIPT_FAILED  # jobs' module: large

    if kind != JOB_RUN_KIND or current.is_terminal:
        return wanted, error
    if wanted == RunStatus.COMPLETED:
        return current, None
    if wanted == RunStatus.FAILED:
        return current, {
            "message": "The script marked the run failed.",
            **(error or {}),
            SCRIPT_FAILED: True,
        }
    return RunStatus.CANCEL_REQUESTED, error


def _unless_past_it(
    kind: str, current: RunStatus, wanted: RunStatus, error: dict[str, Any] | None
) -> tuple[RunStatus, dict[str, Any] | None]:
    """A run that can no longer move to ``wanted`` (it ended, or is finalizing) stays."""
    return (wanted, error) if can_move(current, wanted) else (current, None)
