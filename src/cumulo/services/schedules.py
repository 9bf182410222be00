"""Schedules: when a published pipeline runs next, and firing each tick exactly once.

A schedule's rule is a recurrence (``frequency`` Second | Minute | Hour | Day |
Week, every ``interval`` of them, on ticks ``start_time + k * period``) or a
cron expression (croniter reads it, in UTC); ``core/schedules.py`` checks it
and computes its ticks. Its row keeps ``next_fire_at``.

``ScheduleFirer.fire_due(now)`` runs in every server process: for each schedule
whose next tick has come it claims the *latest* tick at or before ``now`` by
inserting ``(schedule, tick)`` into ``schedule_firings`` (the unique key lets
one process win, whichever), submits the pipeline and moves ``next_fire_at`` to
the first tick after ``now``. Ticks missed while no process ran collapse into
that one firing. A firing claimed by a process that stopped before it
submitted is taken over once its claim is older than the lease time.

A schedule made ``on_dataset`` has no ticks: it keeps ``dataset_version``, the
newest version of the dataset it fired for (or saw when it was made). Every
``DATASET_CHECK_MS`` each process lists the versions registered after it and
claims each one as the firing's tick, the same ``(schedule, tick)`` claim: one
run per new version, whichever process sees it first, and versions registered
while no process ran fire when one starts.
"""

from __future__ import annotations

import logging

from cumulo.core.entities import now_ms
from cumulo.core.errors import CumuloError, NotFound
from cumulo.core.pipelines import SCHEDULE_TAG, TICK_TAG
from cumulo.services.pipelines import PipelineService

log = logging.getLogger("cumulo.schedules")

DATASET_CHECK_MS = 1_000  # how often a process looks for new dataset versions
DATASET_TAG = "cumulo.schedule.dataset"  # a run fired by a dataset's version: "name:version"


class ScheduleFirer:
    """Fires the due schedules of a store, once per tick whichever process asks."""

    def __init__(self, service: PipelineService, owner: str, lease_ms: int) -> None:
        self.service = service
        self.store = service.store
        self.owner = owner
        self.lease_ms = lease_ms
        self._datasets_checked_at = 0

    def fire_due(self, now: int | None = None) -> int:
        """Fire every schedule whose tick has come; how many this process fired."""
        now = now_ms() if now is None else now
        fired = 0
        for sid, tick in self._orphans(now_ms()):  # claims age by the clock, whatever ``now``
            fired += self._fire(sid, tick, retaken=True)
        for sid, info in self.store.due_schedules(now):
            from cumulo.core.schedules import latest_tick, next_tick  # croniter: when one is due

            assert info.next_fire_at is not None
            latest = latest_tick(info, now)
            tick = max(latest or 0, info.next_fire_at)
            claimed = self.store.claim_firing(sid, tick, self.owner)
            self.store.advance(sid, info.next_fire_at, next_tick(info, now))
            if claimed:
                fired += self._fire(sid, tick, retaken=False)
        if now_ms() - self._datasets_checked_at >= DATASET_CHECK_MS:
            self._datasets_checked_at = now_ms()
            fired += self.fire_new_versions()
        return fired

    def fire_new_versions(self) -> int:
        """Fire each dataset schedule once per version registered since it last fired."""
        datasets = self.service.jobs.datasets
        fired = 0
        for sid, info in self.store.dataset_schedules():
            assert info.on_dataset is not None
            seen = info.dataset_version or 0
            try:
                found = datasets.list_datasets(info.workspace, info.on_dataset)
            except CumuloError as exc:
                log.warning("schedule %s: dataset not read: %s", info.name, exc.message)
                continue
            new = sorted(v.version for v in found if v.version > seen)
            for version in new:
                if self.store.claim_firing(sid, version, self.owner):
                    fired += self._fire(sid, version, retaken=False)
            if new:
                self.store.advance_dataset(sid, info.dataset_version, new[-1])
        return fired

    def _orphans(self, now: int) -> list[tuple[int, int]]:
        out = []
        for sid, tick, claimed_at in self.store.unsubmitted_firings(now - self.lease_ms):
            if self.store.retake_firing(sid, tick, self.owner, claimed_at):
                out.append((sid, tick))
        return out

    def _fire(self, sid: int, tick: int, *, retaken: bool) -> int:
        try:
            info = self.store.schedule_by_id(sid)
        except NotFound:
            return 0
        tracking = self.service.tracking
        tags = {SCHEDULE_TAG: info.name, TICK_TAG: str(tick)}
        if info.on_dataset is not None:
            tags[DATASET_TAG] = f"{info.on_dataset}:{tick}"
        try:
            if retaken:  # its claimer may have submitted it and stopped right after
                exp = tracking.get_or_create_experiment(info.workspace, info.experiment_name)
                found = tracking.search_runs(info.workspace, [exp.id], tags=dict(tags)).runs
                if found:
                    self.store.fired(sid, tick, found[0].id)
                    return 0
            run = self.service.submit_published(
                info.workspace,
                info.pipeline_id,
                info.experiment_name,
                info.parameters,
                tags=tags,
                user=f"schedule:{info.name}",
                dataset_versions={info.on_dataset: tick} if info.on_dataset else None,
            )
        except CumuloError as exc:
            log.warning("schedule %s: tick %s not submitted: %s", info.name, tick, exc.message)
            return 0
        self.store.fired(sid, tick, run.id)
        log.info("schedule %s fired for tick %s: run %s", info.name, tick, run.id)
        return 1
