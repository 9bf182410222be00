"""A job's course through JobService: each change holds only on the job as its caller read it."""

from __future__ import annotations

from pathlib import Path

from cumulo.core.jobs import JobState
from cumulo.core.settings import Settings
from cumulo.core.status import RunStatus
from cumulo.services.context import close_all, open_services
from cumulo.services.jobs import JobService

OWNER = "scheduler-a"
LEASE_MS = 60_000


def _jobs(tmp_path: Path) -> JobService:
    jobs = open_services(Settings.load(home=tmp_path / "home")).jobs
    jobs.tracking.create_workspace("ws")
    return jobs


def _submit(jobs: JobService, tmp_path: Path) -> str:
    src = tmp_path / "src"
    src.mkdir(parents=True)
    (src / "train.py").write_text("print('hi')\n")
    snapshot = jobs.take_snapshot("ws", src)
    experiment = jobs.tracking.get_or_create_experiment("ws", "course")
    config = {"script": "train.py", "snapshot": snapshot.hash}
    return jobs.submit_job("ws", experiment.id, config, max_retries_=1).id


def test_a_lost_job_is_retried_then_failed_and_stale_callers_change_nothing(
    tmp_path: Path,
) -> None:
    jobs = _jobs(tmp_path)
    try:
        run_id = _submit(jobs, tmp_path)
        first = jobs.lease_next(OWNER, LEASE_MS, ["local"])
        assert first is not None and (first.run_id, first.attempts) == (run_id, 1)
        assert jobs.record_handle(first, {"pid": 1})
        assert not jobs.record_handle(first, {"pid": 2})  # one process per attempt
        assert not jobs.give_up(first)  # read before its handle was recorded: out of date
        first = jobs.get_job("ws", run_id)

        assert jobs.retry(first, OWNER, "The job was lost (a test); retrying, attempt 2.")
        assert jobs.get_job("ws", run_id).state == JobState.QUEUED.value
        assert jobs.tracking.get_run("ws", run_id).status == RunStatus.QUEUED.value
        # Whoever still holds the first attempt as it read it moves nothing now.
        assert not jobs.end(first, RunStatus.FAILED, {"code": "JobLost", "message": "late"})
        assert not jobs.give_up(first)
        assert not jobs.still_leased(first, LEASE_MS)

        second = jobs.lease_next(OWNER, LEASE_MS, ["local"])
        assert second is not None and second.attempts == 2
        error = {"code": "JobLost", "message": "The job was lost: its node stopped."}
        assert jobs.end(second, RunStatus.FAILED, error)
        run = jobs.tracking.get_run("ws", run_id)
        assert (run.status, run.error) == (RunStatus.FAILED.value, error)
        assert jobs.get_job("ws", run_id).state == JobState.DONE.value
        logs = "".join(chunk.text for chunk in jobs.get_logs("ws", run_id).chunks)
        assert "retrying, attempt 2" in logs and "its node stopped" in logs
        assert "late" not in logs
    finally:
        close_all()


def test_a_cancel_before_the_start_and_one_during_the_launch(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    try:
        queued = _submit(jobs, tmp_path)
        jobs.tracking.set_run_status("ws", queued, RunStatus.CANCEL_REQUESTED.value)
        assert jobs.cancel_queued() == 1
        assert jobs.tracking.get_run("ws", queued).status == RunStatus.CANCELED.value
        assert jobs.lease_next(OWNER, LEASE_MS, ["local"]) is None

        started = _submit(jobs, tmp_path / "again")
        job = jobs.lease_next(OWNER, LEASE_MS, ["local"])
        assert job is not None
        jobs.set_job_status("ws", started, RunStatus.PREPARING.value)
        jobs.cancel_job("ws", started)  # asked to stop while it prepares
        assert jobs.tracking.get_run("ws", started).status == RunStatus.CANCEL_REQUESTED.value
        assert jobs.settle_cancel(job)  # its launcher finds the run asked to stop
        run = jobs.tracking.get_run("ws", started)
        assert run.status == RunStatus.CANCELED.value
        assert run.error == {"code": "Canceled", "message": "The run was canceled by a user."}
        assert jobs.get_job("ws", started).state == JobState.DONE.value
        # A start failure that comes after changes nothing.
        assert not jobs.fail(job, {"code": "StartFailed", "message": "no space left"})
        assert jobs.tracking.get_run("ws", started).status == RunStatus.CANCELED.value
    finally:
        close_all()
