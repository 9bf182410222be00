"""The scheduler's rhythm: a pass says whether anything is in flight, so that an idle
scheduler polls the store once a second instead of ten times (a submit in its own
process wakes it at once), and one with a job to launch or watch keeps its pace."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.jobs.conftest import wait_until, write_script

from cumulo import Experiment, Workspace
from cumulo.services.context import open_services
from cumulo.services.scheduler import Scheduler


def test_a_pass_is_busy_only_while_a_job_is_in_flight(tmp_path: Path) -> None:
    ws = Workspace.create(f"rhythm-{uuid.uuid4().hex[:8]}")
    assert ws._settings is not None
    services = open_services(ws._settings)
    jobs = services.jobs
    scheduler = Scheduler(jobs, owner="rhythm", lease_seconds=10.0)
    try:
        assert scheduler.tick() is False  # nothing queued, nothing owned

        src = tmp_path / "src"
        write_script(src, "quick.py", "print('done')\n")
        snap = jobs.take_snapshot(ws.name, src)
        config = {"script": "quick.py", "snapshot": snap.hash}
        run_id = jobs.submit_job(ws.name, Experiment(ws, "rhythm").id, config).id

        assert scheduler.tick() is True  # it leased the job: launching
        # While the job runs the passes stay busy; once it is done and settled, idle.
        wait_until(
            lambda: jobs.get_job(ws.name, run_id).state == "done" and scheduler.tick() is False,
            90,
            "the job to end and the scheduler to fall idle",
        )
        assert jobs.meta.get_run(ws.name, run_id).status == "Completed"
    finally:
        scheduler.stop()
