"""The workspace's Pipelines page: published pipelines by endpoint with their REST URLs and
recent runs, schedules with their rule, next tick and the runs their firings started, and the
empty states that say how to publish and schedule."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from studio_kit import LiveServer

from cumulo import Dataset, Pipeline, PythonScriptStep, Schedule, ScheduleRecurrence, Workspace
from cumulo.core.entities import now_ms
from cumulo.core.settings import Settings
from cumulo.services.context import build_services, close_all
from cumulo.services.schedules import ScheduleFirer

MINUTE = 60_000


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("pipelines-page")
    yield home
    close_all(stop_nodes=True)


@pytest.fixture(scope="module")
def client(home: Path) -> Iterator[httpx.Client]:
    with LiveServer(Settings.load(home=home)) as server, httpx.Client(base_url=server.url) as c:
        yield c


def test_an_empty_workspace_says_how_to_publish_and_schedule(
    home: Path, client: httpx.Client
) -> None:
    ws = Workspace.create(f"empty-{uuid.uuid4().hex[:6]}", home=home)
    page = client.get(f"/ws/{ws.name}/pipelines")
    assert page.status_code == 200
    assert f'href="/ws/{ws.name}/pipelines" class="on"' in page.text  # in the workspace nav
    assert 'id="no-published"' in page.text and ".publish(" in page.text
    assert 'id="no-schedules"' in page.text and "Schedule.create(" in page.text
    assert "cumulo schedule create" in page.text


def test_published_pipelines_and_schedules_with_their_runs(
    home: Path, client: httpx.Client
) -> None:
    ws = Workspace.create(f"flows-{uuid.uuid4().hex[:6]}", home=home)
    src = home / "src"
    src.mkdir(exist_ok=True)
    (src / "noop.py").write_text("print('tick')\n")
    steps = [PythonScriptStep("prep", "noop.py", src), PythonScriptStep("train", "noop.py", src)]
    first = Pipeline(ws, steps).publish("nightly", description="prepare then train")
    second = Pipeline(ws, steps[:1]).publish("nightly")
    start = (now_ms() // MINUTE - 10) * MINUTE
    Schedule.create(
        ws, "hourly", first.id, "scheduled",
        recurrence=ScheduleRecurrence("Hour", 1, start_time=start / 1000),
    )  # fmt: skip
    Schedule.create(ws, "at-three", second.id, "scheduled", cron="0 3 * * *").disable()
    (src / "data.txt").write_text("1,2,3\n")
    Dataset.File.from_files(src / "data.txt").register(ws, "digits")
    Schedule.create(ws, "on-digits", first.id, "retrain", on_dataset="digits")
    services = build_services(Settings.load(home=home))
    try:  # the server's firer claims the tick that has come and submits the pipeline
        firer = ScheduleFirer(services.pipelines, "page-test", lease_ms=30_000)
        assert firer.fire_due(start + 61 * MINUTE) == 1
        ((tick, run_id),) = services.pipelines.schedule_firings(ws.name, "hourly")
        assert tick == start + 60 * MINUTE
    finally:
        services.close()

    page = client.get(f"/ws/{ws.name}/pipelines")
    assert page.status_code == 200
    text = page.text
    assert "no-published" not in text and "no-schedules" not in text
    # Both versions of the endpoint, newest first, the first one the default.
    assert text.index(f'id="pipeline-{second.id}"') < text.index(f'id="pipeline-{first.id}"')
    assert "default version 1" in text and "prepare then train" in text and "prep, train" in text
    assert f"POST {client.base_url}/api/v1/workspaces/{ws.name}/pipelines/{first.id}/runs" in text
    # The scheduled run, under its pipeline version and under the firing that started it.
    link = f'href="/ws/{ws.name}/runs/{run_id}/pipeline"'
    assert text.count(link) == 2
    assert text.index(link) > text.index(f'id="pipeline-{first.id}"')
    hourly = text[text.index('data-schedule="hourly"') :]
    assert "every 1 Hour" in hourly and f'href="#pipeline-{first.id}"' in hourly
    assert link in hourly
    at_three = text[text.index('data-schedule="at-three"') : text.index('data-schedule="hourly"')]
    assert "0 3 * * *" in at_three and "no (disabled)" in at_three and "not fired yet" in at_three
    on_digits = text[text.index('data-schedule="on-digits"') :]
    assert "on new digits" in on_digits
    assert f'version 2 of <a href="/ws/{ws.name}/datasets/digits">' in on_digits
    assert client.get(f"/ws/{ws.name}/runs/{run_id}/pipeline").status_code == 200
