"""Exactly once: no interleaving of launches, watch passes and takeovers runs a job twice.

The interleavings are forced with the scheduler's ``interleave`` hook and events
the test sets, never with sleeps: a watch pass that read the job list while a
launch was between "process started" and "handle recorded", and a scheduler
whose lease ran out mid-launch while another one took the job over.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text, update
from tests.jobs.conftest import wait_until, write_script

from cumulo import Experiment, Workspace
from cumulo.compute import processes
from cumulo.core.entities import RunInfo, now_ms
from cumulo.core.jobs import JobInfo
from cumulo.core.status import RunStatus
from cumulo.services.context import open_services
from cumulo.services.jobs import JobService
from cumulo.services.scheduler import Scheduler
from cumulo.store import schema_jobs
from cumulo.store.jobs import as_seen

# Appends one line to the file it is given each time it starts (with its agent's
# process id), then waits for the gate file when it is given one.
COUNTED = (
    "import os, sys, time\n"
    "with open(sys.argv[1], 'a') as f:\n"
    "    f.write(f'start {os.getppid()}\\n')\n"
    "while len(sys.argv) > 2 and not os.path.exists(sys.argv[2]):\n"
    "    time.sleep(0.05)\n"
)
CLEAN_HISTORY = ["Queued", "Preparing", "Starting", "Running", "Finalizing", "Completed"]


@pytest.fixture(params=["sqlite", "postgres"])
def shared_ws(request: pytest.FixtureRequest, tmp_path: Path) -> Workspace:
    """A workspace on each kind of store two servers can share."""
    name = f"ws-{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        return Workspace.create(name)
    url = request.getfixturevalue("postgres_url")
    return Workspace.create(name, database_url=url, artifact_root=str(tmp_path / "artifacts"))


class Gate:
    """Blocks the hooked thread at a point until the test opens the gate."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.opened = threading.Event()

    def wait_here(self) -> None:
        self.reached.set()
        assert self.opened.wait(120), "the test never opened the gate"


def _submit(
    jobs: JobService,
    ws: Workspace,
    src: Path,
    counter: Path,
    retries: int,
    gate: Path | None = None,
) -> str:

    write_script(src, "counted.py", COUNTED)
    snap = jobs.take_snapshot(ws.name, src)
    exp = Experiment(ws, "once")
    args = [str(counter)] + ([str(gate)] if gate is not None else [])
    config = {"script": "counted.py", "snapshot": snap.hash, "arguments": args}
    # Through the service, so this process hosts no scheduler besides the test's own.
    return jobs.submit_job(ws.name, exp.id, config, max_retries_=retries).id


def _finished(jobs: JobService, ws: Workspace, run_id: str) -> RunInfo:
    def done() -> RunInfo | None:
        run = jobs.meta.get_run(ws.name, run_id)
        job = jobs.get_job(ws.name, run_id)
        return run if run.status == "Completed" and job.state == "done" else None

    found: RunInfo = wait_until(done, 90, "the run to complete and its job to be done")
    return found


def _agents_ended() -> None:
    """Every agent this process started has exited (a second run has had its say)."""
    with processes._lock:
        children = list(processes._children.values())
    for proc in children:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            processes.end_groups([proc.pid], grace=2.0)
            proc.wait(10)


def _starts(counter: Path) -> int:
    lines = counter.read_text().splitlines() if counter.exists() else []
    return sum(1 for line in lines if line.startswith("start "))


def _agent_of(counter: Path) -> int:
    """The process id of the agent that runs the script (the script's parent)."""
    return int(counter.read_text().splitlines()[-1].split()[1])


@pytest.mark.parametrize("retries", [0, 1])
def test_a_watch_pass_reading_a_launch_in_flight_does_not_lose_the_job(
    ws: Workspace, tmp_path: Path, retries: int
) -> None:
    assert ws._settings is not None
    services = open_services(ws._settings)
    jobs = services.jobs
    scheduler = Scheduler(jobs, owner="solo")
    launch_started, launch_done = Gate(), threading.Event()
    listed_in_flight = threading.Event()

    def interleave(point: str, _run_id: str) -> None:
        if point == "launch-started":
            launch_started.wait_here()  # the process runs; its handle is not recorded yet
        elif point == "watch-listed" and launch_started.reached.is_set():
            if not listed_in_flight.is_set():
                listed_in_flight.set()
                launch_started.opened.set()  # now let the launch record its handle...
                assert launch_done.wait(120)  # ...and finish before this pass goes on
        elif point == "launch-done":
            launch_done.set()

    scheduler.interleave = interleave
    counter = tmp_path / "starts.txt"
    try:
        scheduler.start()
        run_id = _submit(jobs, ws, tmp_path / "src", counter, retries)
        run = _finished(jobs, ws, run_id)
    finally:
        launch_started.opened.set()
        scheduler.stop()
    _agents_ended()

    assert listed_in_flight.is_set()
    assert [change.status for change in run.status_history] == CLEAN_HISTORY
    assert run.error is None
    assert jobs.get_job(ws.name, run_id).attempts == 1
    assert _starts(counter) == 1


def _two_schedulers(ws: Workspace, second_lease: float) -> tuple[JobService, Scheduler, Scheduler]:
    """``first`` is driven by hand (no loop, so no renewals): its lease runs out mid-launch."""
    assert ws._settings is not None
    services = open_services(ws._settings)
    first = Scheduler(services.jobs, owner="first", lease_seconds=1.0)
    # The second one's lease is also how long it waits for a handle a launcher may record.
    second = Scheduler(services.jobs, owner="second", lease_seconds=second_lease)
    return services.jobs, first, second


def _taken_over(jobs: JobService, ws: Workspace, run_id: str) -> None:
    wait_until(
        lambda: jobs.get_job(ws.name, run_id).lease_owner == "second",
        60,
        "the second scheduler to take the job over",
    )


def test_a_launcher_whose_lease_was_taken_over_before_the_process_starts_nothing(
    shared_ws: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cumulo.scheduler")
    ws = shared_ws
    jobs, first, second = _two_schedulers(ws, second_lease=2.0)
    stalled, first_done = Gate(), threading.Event()

    def interleave(point: str, _run_id: str) -> None:
        if point == "launch-prepared":  # prepared, its process not started yet
            stalled.wait_here()
        elif point == "launch-done":
            first_done.set()

    first.interleave = interleave
    counter, gate = tmp_path / "starts.txt", tmp_path / "gate"
    gate.write_text("open")
    try:
        run_id = _submit(jobs, ws, tmp_path / "src", counter, retries=1, gate=gate)
        first.tick()  # one pass: it leases the job and launches it
        assert stalled.reached.wait(60)
        second.start()
        _taken_over(jobs, ws, run_id)
        # The second one finds no process, retries, and the retry completes...
        _finished(jobs, ws, run_id)
        stalled.opened.set()  # ...then the first one goes on with its launch
        assert first_done.wait(60)
    finally:
        stalled.opened.set()
        first.stop()
        second.stop()
    _agents_ended()

    run = jobs.meta.get_run(ws.name, run_id)
    assert run.status == "Completed"
    assert "Failed" not in [change.status for change in run.status_history]
    assert run.error is None
    assert jobs.get_job(ws.name, run_id).attempts == 2
    assert _starts(counter) == 1
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(run_id in m and "was lost" in m and "metrics" in m for m in warned), warned
    assert any(run_id in m and "taken over by another scheduler" in m for m in warned), warned


def test_a_takeover_while_the_process_starts_waits_for_its_handle(
    shared_ws: Workspace, tmp_path: Path
) -> None:
    ws = shared_ws
    jobs, first, second = _two_schedulers(ws, second_lease=10.0)
    stalled, first_done = Gate(), threading.Event()
    passes_of_second: list[str] = []
    frozen: list[int] = []

    def first_interleave(point: str, _run_id: str) -> None:
        if point == "launch-started":  # its process runs; the handle is not recorded yet
            stalled.wait_here()
        elif point == "launch-done":
            first_done.set()

    def second_interleave(point: str, run_id: str) -> None:
        if point == "watch-listed":
            passes_of_second.append(run_id)

    first.interleave, second.interleave = first_interleave, second_interleave
    counter, gate = tmp_path / "starts.txt", tmp_path / "gate"
    try:
        run_id = _submit(jobs, ws, tmp_path / "src", counter, retries=1, gate=gate)
        first.tick()
        assert stalled.reached.wait(60)
        wait_until(lambda: _starts(counter) == 1, 60, "the script to start")
        # While its agent lives, the agent renews the lease the stalled launcher cannot.
        held = jobs.get_job(ws.name, run_id).lease_expires_at or 0
        wait_until(
            lambda: (jobs.get_job(ws.name, run_id).lease_expires_at or 0) > held + 500,
            60,
            "the agent to renew the job's lease",
        )
        assert jobs.get_job(ws.name, run_id).lease_owner == "first"
        # Its host freezes: nothing renews the lease any more, and the second one takes over.
        agent = _agent_of(counter)
        os.kill(agent, signal.SIGSTOP)
        frozen.append(agent)
        second.start()
        _taken_over(jobs, ws, run_id)
        # A whole watch pass of the second one over the handle-less job, then the next.
        wait_until(lambda: passes_of_second.count(run_id) >= 2, 60, "two watch passes")
        stalled.opened.set()
        assert first_done.wait(60)
        os.kill(agent, signal.SIGCONT)
        gate.write_text("open")
        run = _finished(jobs, ws, run_id)
    finally:
        stalled.opened.set()
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        gate.write_text("open")
        first.stop()
        second.stop()
    _agents_ended()

    assert run.status == "Completed"
    assert "Failed" not in [change.status for change in run.status_history]
    assert run.error is None
    assert jobs.get_job(ws.name, run_id).attempts == 1
    assert _starts(counter) == 1


# ------------------------------------------------------------------ the store
def _queued_job(ws: Workspace, tmp_path: Path) -> tuple[JobService, str]:
    """A queued job and no scheduler: the test makes every move itself."""
    assert ws._settings is not None
    jobs = open_services(ws._settings).jobs
    return jobs, _submit(jobs, ws, tmp_path / "src", tmp_path / "starts.txt", retries=1)


def _settle(jobs: JobService, ws: Workspace, run_id: str) -> None:
    """End the job, so no scheduler of a later test on this store picks it up."""
    jobs.store.update_job(run_id, state="done", release=True)
    jobs.meta.set_run_status(ws.name, run_id, RunStatus.CANCELED, force=True)


def test_a_change_made_on_a_stale_copy_changes_nothing(
    shared_ws: Workspace, tmp_path: Path
) -> None:
    jobs, run_id = _queued_job(shared_ws, tmp_path)
    store = jobs.store
    leased = store.lease_next("first", 60_000, workspace=shared_ws.name)
    assert leased is not None and leased.run_id == run_id
    handle = {"pid": 1, "start": 2}
    unrecorded = {"state": "active", "attempts": 1, "handle": None}
    assert store.update_job(run_id, handle=handle, expect=unrecorded)
    assert not store.update_job(run_id, handle={"pid": 3}, expect=unrecorded)

    stale = leased  # read before the handle was recorded
    assert not store.update_job(run_id, state="done", release=True, expect=as_seen(stale))
    assert not store.requeue(run_id, "first", expect=as_seen(stale))
    assert not store.renew_lease(run_id, 60_000, as_seen(stale))
    now = store.get_job(shared_ws.name, run_id)
    assert (now.state, now.lease_owner, now.handle) == ("active", "first", handle)

    assert store.requeue(run_id, "first", expect=as_seen(now))
    assert store.get_job(shared_ws.name, run_id).state == "queued"
    _settle(jobs, shared_ws, run_id)


def _fresh_database(postgres_url: str) -> str:
    name = f"takeover_{uuid.uuid4().hex[:12]}"
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return postgres_url.rsplit("/", 1)[0] + "/" + name


def test_a_takeover_never_takes_a_lease_renewed_meanwhile(
    postgres_url: str, tmp_path: Path
) -> None:
    """The renewal commits while the takeover waits on the row: the takeover takes nothing."""
    ws = Workspace.create(
        f"ws-{uuid.uuid4().hex[:8]}",
        # A database of its own: other tests' expired jobs would fill the takeover's batch.
        database_url=_fresh_database(postgres_url),
        artifact_root=str(tmp_path / "artifacts"),
    )
    jobs, run_id = _queued_job(ws, tmp_path)
    leased = jobs.store.lease_next("first", 1, workspace=ws.name)
    assert leased is not None and leased.lease_expires_at is not None
    wait_until(lambda: now_ms() > (leased.lease_expires_at or 0), 10, "the lease to run out")

    engine = jobs.store.db.engine
    taken: list[JobInfo] = []
    with engine.connect() as renewing:
        renewal = renewing.begin()
        renewing.execute(
            update(schema_jobs.jobs)
            .where(schema_jobs.jobs.c.run_id == run_id)
            .values(lease_expires_at=now_ms() + 60_000)
        )
        takeover = threading.Thread(
            target=lambda: taken.extend(jobs.store.take_over_expired("second", 60_000))
        )
        takeover.start()
        with engine.connect() as watching:
            waiting_on_a_lock = text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            )
            wait_until(
                lambda: watching.execute(waiting_on_a_lock).scalar(),
                30,
                "the takeover to wait on the renewed row",
            )
        renewal.commit()
        takeover.join(30)
    assert run_id not in [job.run_id for job in taken]
    assert jobs.store.get_job(ws.name, run_id).lease_owner == "first"
    _settle(jobs, ws, run_id)
