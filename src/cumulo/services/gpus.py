"""Jobs that ask for GPUs: leased only while their GPUs are free, refused when they never can be.

A target whose jobs run on this machine (``Capacity.gpu_ids``: local, a managed
pool) has its GPUs handed out here: the scheduler and each pool node lease jobs
through a ``GpuGate``, which takes the GPUs a job asks for in the home's
``GpuLedger`` before the job is let through. A job whose GPUs are all held
goes back to the queue as it was (its attempt not counted), with the reason on
its run (the ``cumulo.queue_reason`` tag and a line in its log), and is looked
at again a moment later; jobs behind it that need no GPU go on meanwhile.
``prepare`` gives the job exactly the GPUs it holds (``CUDA_VISIBLE_DEVICES``;
none to a job that asked for none). An endpoint's replicas on this machine
take theirs from the same ledger through ``ReplicaGpus``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from cumulo.compute.base import Capacity, target_type
from cumulo.compute.gpus import GpuLedger, machine_gpus
from cumulo.core.entities import now_ms
from cumulo.core.errors import CumuloError
from cumulo.core.jobs import QUEUE_REASON_TAG, JobInfo, JobState, LogStream, Resources
from cumulo.services.jobs import JobService

log = logging.getLogger("cumulo.gpus")

RECHECK_SECONDS = 1.0  # how soon a job waiting for GPUs is looked at again


def capacity(jobs: JobService, workspace: str, target: str, kind: str) -> Capacity | None:
    """What the target declares one job can get (None: it declares nothing)."""
    declared = target_type(kind).capacity
    if declared is None:
        return None
    return declared(jobs.get_compute_target(workspace, target).config, jobs.settings)


def gpu_variables(jobs: JobService, job: JobInfo) -> dict[str, str]:
    """``CUDA_VISIBLE_DEVICES`` for a job whose target hands out this machine's GPUs."""
    found = capacity(jobs, job.workspace, job.target, job.kind)
    if found is None or found.gpu_ids is None:
        return {}
    held = GpuLedger(jobs.home).held_by(job.run_id, job.attempts)
    return {"CUDA_VISIBLE_DEVICES": ",".join(map(str, held))}


def job_alive(jobs: JobService, run_id: str, attempt: int) -> bool:
    """Whether that attempt of the job still runs (and so holds its GPUs)."""
    job = jobs.store.find_job(run_id)
    return job is not None and job.state == JobState.ACTIVE.value and job.attempts == attempt


class ReplicaGpus:
    """This machine's GPUs for the replicas a supervisor runs (a ``serving.local.GpuSource``),
    out of the ledger its jobs take theirs from."""

    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        self.ledger = GpuLedger(jobs.home)

    def take(self, holder: str, count: int) -> tuple[int, ...] | None:
        inventory = machine_gpus(self.jobs.settings)
        return self.ledger.take_for_process(
            holder, count, inventory, lambda run, attempt: job_alive(self.jobs, run, attempt)
        )

    def release(self, holder: str) -> None:
        self.ledger.release(holder)


def waiting_reason(gpus: int) -> str:
    return f"waiting for {gpus} GPU" + ("" if gpus == 1 else "s")


class GpuGate:
    """Leases jobs for ``owner`` (a scheduler or a pool node) only with their GPUs."""

    def __init__(self, jobs: JobService, owner: str) -> None:
        self.jobs = jobs
        self.owner = owner
        self.ledger = GpuLedger(jobs.home)
        self._waiting: dict[str, float] = {}  # run id -> when to look at it again
        self._told: set[str] = set()

    def lease(self, take: Callable[[Sequence[str]], JobInfo | None]) -> JobInfo | None:
        """The next job ``take`` leases whose GPUs are free now (``take`` gets the run ids
        to pass over)."""
        now = time.monotonic()
        self._waiting = {run: at for run, at in self._waiting.items() if at > now}
        while True:
            job = take(tuple(self._waiting))
            if job is None:
                return None
            if self._admit(job):
                return job
            self.jobs.unlease(job, self.owner)
            self._waiting[job.run_id] = now + RECHECK_SECONDS

    def _admit(self, job: JobInfo) -> bool:
        wanted = Resources.parse(job.job_config.resources).gpus
        if not wanted:
            return True
        try:
            found = capacity(self.jobs, job.workspace, job.target, job.kind)
        except CumuloError:
            return True  # the target is gone: the launch fails with that reason
        if found is None or found.gpu_ids is None:
            return True  # the target places GPUs itself
        held = self.ledger.take(job.run_id, job.attempts, wanted, found.gpu_ids, self._alive)
        if held is None:
            self._say_waiting(job, wanted, len(found.gpu_ids))
            return False
        self._clear_reason(job)
        return True

    def _alive(self, run_id: str, attempt: int) -> bool:
        return job_alive(self.jobs, run_id, attempt)

    def _say_waiting(self, job: JobInfo, wanted: int, total: int) -> None:
        if job.run_id in self._told:
            return
        self._told.add(job.run_id)
        reason = waiting_reason(wanted)
        line = f"Queued, {reason}: {total} on this machine, none free for it yet.\n"
        try:
            self.jobs.tracking.set_tags(job.workspace, job.run_id, {QUEUE_REASON_TAG: reason})
            self.jobs.store.append_logs(job.run_id, [(LogStream.SYSTEM.value, line, now_ms())])
        except CumuloError as exc:
            log.warning("could not note why job %s waits: %s", job.run_id, exc)

    def _clear_reason(self, job: JobInfo) -> None:
        self._told.discard(job.run_id)
        try:
            run = self.jobs.tracking.get_run(job.workspace, job.run_id)
            if QUEUE_REASON_TAG in run.tags:
                self.jobs.tracking.delete_tags(job.workspace, job.run_id, [QUEUE_REASON_TAG])
        except CumuloError as exc:
            log.warning("could not clear why job %s waited: %s", job.run_id, exc)
