"""Schedules: tick arithmetic, and one firing per tick across processes and restarts."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cumulo import (
    Dataset,
    InvalidInput,
    Pipeline,
    PipelineParameter,
    PythonScriptStep,
    Schedule,
    ScheduleRecurrence,
    Workspace,
)
from cumulo.core import schedules
from cumulo.core.pipelines import SCHEDULE_TAG, TICK_TAG, ScheduleInfo
from cumulo.core.settings import Settings
from cumulo.services.context import Services, build_services
from cumulo.services.pipeline_driver import PipelineDriver
from cumulo.services.schedules import DATASET_TAG

MINUTE = 60_000


def _info(**rule: object) -> ScheduleInfo:
    blank = ScheduleInfo("w", "s", "p", "e", {}, None, None, None, None, True, None)
    return schedules.with_rule(blank, now=rule.pop("now"), **rule)  # type: ignore[arg-type]


def test_recurrence_and_cron_ticks() -> None:
    start = 1_000 * MINUTE
    info = _info(frequency="minute", interval=5, start_time=start, cron=None, now=start - 1)
    assert (info.frequency, info.interval, info.next_fire_at) == ("Minute", 5, start)
    assert schedules.next_tick(info, start) == start + 5 * MINUTE
    assert schedules.latest_tick(info, start + 12 * MINUTE) == start + 10 * MINUTE
    assert schedules.first_tick(info, start + 11 * MINUTE) == start + 15 * MINUTE

    at = int(datetime(2026, 1, 1, 0, 3, tzinfo=UTC).timestamp() * 1000)
    cron = _info(frequency=None, interval=1, start_time=None, cron="*/5 * * * *", now=at)
    assert cron.next_fire_at == at + 2 * MINUTE
    assert schedules.latest_tick(cron, at + 9 * MINUTE) == at + 7 * MINUTE
    assert schedules.latest_tick(cron, at + 7 * MINUTE) == at + 7 * MINUTE

    with pytest.raises(InvalidInput, match="not a cron expression"):
        _info(frequency=None, interval=1, start_time=None, cron="every day", now=at)
    with pytest.raises(InvalidInput, match="Unknown frequency 'Month'"):
        _info(frequency="Month", interval=1, start_time=None, cron=None, now=at)
    with pytest.raises(InvalidInput, match="one of the two"):
        _info(frequency="Day", interval=1, start_time=None, cron="* * * * *", now=at)


def _publish(ws: Workspace, src: Path) -> str:
    (src / "noop.py").write_text("print('tick')\n")
    step = PythonScriptStep("only", "noop.py", src, ["--x", PipelineParameter("x", 1)])
    return Pipeline(ws, [step]).publish("nightly").id


def _driver(home: Path, owner: str, lease: float = 30) -> tuple[Services, PipelineDriver]:
    services = build_services(Settings.load(home=home))
    return services, PipelineDriver(services.pipelines, lease_seconds=lease, owner=owner)


@pytest.mark.slow
def test_a_schedule_fires_once_per_tick_across_processes_and_restarts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ws = Workspace.create(f"ws-{uuid.uuid4().hex[:8]}", home=home)
    src = tmp_path / "src"
    src.mkdir()
    pipeline_id = _publish(ws, src)
    start = (int(datetime.now(UTC).timestamp() * 1000) // MINUTE + 60) * MINUTE  # in an hour
    schedule = Schedule.create(
        ws,
        "every-minute",
        pipeline_id,
        "scheduled",
        recurrence=ScheduleRecurrence("Minute", 1, start_time=start / 1000),
        pipeline_parameters={"x": 7},
    )
    assert schedule.info.next_fire_at == start
    with pytest.raises(InvalidInput, match="Unknown pipeline parameters: y"):
        Schedule.create(ws, "bad", pipeline_id, "e", cron="* * * * *", pipeline_parameters={"y": 1})

    one, first = _driver(home, "server-1")
    two, second = _driver(home, "server-2")
    try:
        for k in range(4):  # two servers ask at every tick, at the same moment
            now = start + k * MINUTE + 1_000
            fired: list[int] = []
            threads = [threading.Thread(target=_ask, args=(d, now, fired)) for d in (first, second)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(fired) == [0, 1], f"tick {k}: {fired}"
            assert first.schedules.fire_due(now + 10_000) == 0  # asked again within the tick
    finally:
        one.close()
        two.close()

    # Both servers stop; three ticks pass; a server starts: the missed ticks fire once.
    three, third = _driver(home, "server-3", lease=0.5)
    try:
        late = start + 7 * MINUTE + 30_000
        assert third.schedules.fire_due(late) == 1
        assert third.schedules.fire_due(late + 1_000) == 0
        # A firing claimed by a process that stopped before it submitted is taken over.
        nxt = start + 8 * MINUTE
        assert three.pipelines.store.claim_firing(_schedule_id(three, ws), nxt, "gone")
        assert third.schedules.fire_due(nxt + 1_000) == 0  # claimed by "gone" a moment ago
        time.sleep(0.6)  # "gone" never submits it: its claim grows older than the lease
        assert third.schedules.fire_due(nxt + 2_000) == 1
        assert third.schedules.fire_due(nxt + 3_000) == 0
        # Its claimer submitted the next tick's run and stopped before recording it:
        # taken over, the firing records that run and submits no second one.
        last = start + 9 * MINUTE
        assert three.pipelines.store.claim_firing(_schedule_id(three, ws), last, "gone")
        tags = {SCHEDULE_TAG: "every-minute", TICK_TAG: str(last)}
        orphan = three.pipelines.submit_published(
            ws.name, pipeline_id, "scheduled", {"x": 7}, tags=tags
        )
        time.sleep(0.6)
        assert third.schedules.fire_due(last + 1_000) == 0
    finally:
        three.close()

    firings = Schedule.get(ws, "every-minute").get_firings()
    ticks = [t for t, _ in firings]
    assert ticks == [start + k * MINUTE for k in (0, 1, 2, 3, 7, 8, 9)]
    assert all(run_id for _, run_id in firings) and firings[-1][1] == orphan.id
    runs = {run_id: ws.get_run(run_id) for _, run_id in firings}
    assert len(runs) == len(firings)
    for tick, run_id in firings:
        tags = runs[run_id].get_tags()
        assert tags[SCHEDULE_TAG] == "every-minute" and tags[TICK_TAG] == str(tick)
        assert runs[run_id].get_params() == {"x": "7"}

    schedule.disable()
    assert [s.enabled for s in Schedule.list(ws)] == [False]
    schedule.enable()
    assert Schedule.get(ws, "every-minute").enabled


def _version(ws: Workspace, folder: Path, text: str) -> Dataset:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.txt").write_text(text)
    return Dataset.File.from_files(folder / "data.txt").register(ws, "digits")


def test_a_dataset_schedule_fires_once_per_new_version_across_processes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ws = Workspace.create(f"ws-{uuid.uuid4().hex[:8]}", home=home)
    src = tmp_path / "src"
    src.mkdir()
    first_version = _version(ws, tmp_path / "v1", "one")
    (src / "train.py").write_text("print('train')\n")
    train = first_version.as_named_input("train").as_download()
    step = PythonScriptStep("train", "train.py", src, ["--data", train])
    pipeline_id = Pipeline(ws, [step]).publish("retrain").id
    with pytest.raises(InvalidInput, match="one of the three"):
        Schedule.create(ws, "both", pipeline_id, "e", cron="* * * * *", on_dataset="digits")
    schedule = Schedule.create(ws, "on-digits", pipeline_id, "retrain", on_dataset="digits")
    assert (schedule.info.on_dataset, schedule.info.dataset_version) == ("digits", 1)
    assert schedule.info.next_fire_at is None and "on new digits" in repr(schedule)

    one, first = _driver(home, "server-1")
    two, second = _driver(home, "server-2")
    try:
        asked = [first.schedules.fire_new_versions(), second.schedules.fire_new_versions()]
        assert asked == [0, 0]  # the version there when it was made does not fire
        _version(ws, tmp_path / "v2", "two")
        fired: list[int] = []
        threads = [
            threading.Thread(target=lambda d=d: fired.append(d.schedules.fire_new_versions()))
            for d in (first, second)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(fired) == [0, 1]
        assert first.schedules.fire_new_versions() == 0
        _version(ws, tmp_path / "v3", "three")
        _version(ws, tmp_path / "v4", "four")
        assert second.schedules.fire_new_versions() == 2  # one run for each new version
        assert first.schedules.fire_new_versions() == 0
        # Off, a new version does not fire, nor when it is back on.
        schedule.disable()
        _version(ws, tmp_path / "v5", "five")
        assert first.schedules.fire_new_versions() == 0
        schedule.enable()
        assert Schedule.get(ws, "on-digits").info.dataset_version == 5
        assert first.schedules.fire_new_versions() == 0
        read = {  # each run's step reads the version that fired it
            run_id: one.pipelines.get_pipeline_run(ws.name, str(run_id))["spec"]["steps"][0]
            for _, run_id in Schedule.get(ws, "on-digits").get_firings()
        }
    finally:
        one.close()
        two.close()

    firings = Schedule.get(ws, "on-digits").get_firings()
    assert [tick for tick, _ in firings] == [2, 3, 4]
    for version, run_id in firings:
        assert run_id is not None
        tags = ws.get_run(run_id).get_tags()
        assert tags[SCHEDULE_TAG] == "on-digits" and tags[DATASET_TAG] == f"digits:{version}"
        (item,) = read[run_id]["config"]["inputs"]
        assert (item["dataset"], item["version"]) == ("digits", version)


def _ask(driver: PipelineDriver, now: int, fired: list[int]) -> None:
    fired.append(driver.schedules.fire_due(now))


def _schedule_id(services: Services, ws: Workspace) -> int:
    due = services.pipelines.store.due_schedules(2**62)
    return next(sid for sid, info in due if info.workspace == ws.name)
