"""Chart series: whole when short, downsampled when long, detail for a zoomed range."""

from __future__ import annotations

import math

import pytest

from cumulo.core.errors import InvalidInput
from cumulo.services.context import open_services


def _tracking(workspace):  # the service behind an embedded workspace
    return open_services(workspace._settings).tracking


def _seed(workspace, n: int) -> str:
    tr = _tracking(workspace)
    exp = tr.get_or_create_experiment(workspace.name, "charts")
    run = tr.create_run(workspace.name, exp.id)
    points = [("loss", math.cos(i / 50), i, 1_700_000_000_000 + 10 * i) for i in range(n)]
    points[n // 3] = ("loss", 50.0, n // 3, 1_700_000_000_000 + 10 * (n // 3))
    points[5] = ("loss", math.nan, 5, 1_700_000_000_050)
    for i in range(0, n, 10_000):
        tr.log_batch(workspace.name, run.id, metrics=points[i : i + 10_000])
    return run.id


def test_short_series_comes_whole(workspace) -> None:
    run_id = _seed(workspace, 300)
    chart = _tracking(workspace).get_metric_chart(workspace.name, run_id, "loss", points=500)
    assert chart["count"] == 300 and not chart["downsampled"]
    assert chart["x"] == list(range(300))
    assert chart["y"][5] is None  # NaN is a gap
    assert chart["y"][100] == 50.0


@pytest.mark.slow
def test_long_series_is_downsampled_in_the_store_and_zoom_gives_detail(workspace) -> None:
    run_id = _seed(workspace, 60_000)
    tr = _tracking(workspace)
    chart = tr.get_metric_chart(workspace.name, run_id, "loss", points=400)
    assert chart["count"] == 60_000 and chart["downsampled"]
    assert 100 <= len(chart["x"]) <= 400
    assert chart["x"] == sorted(chart["x"])
    assert max(chart["y"]) == 50.0  # the spike survives
    assert min(chart["y"]) == pytest.approx(-1.0, abs=1e-3)

    mid = tr.get_metric_chart(workspace.name, run_id, "loss", start=19_000, end=21_999, points=400)
    assert mid["count"] == 3_000 and mid["downsampled"]  # LTTB over the raw range
    assert mid["x"][0] == 19_000 and mid["x"][-1] == 21_999
    assert 20_000 in mid["x"]

    detail = tr.get_metric_chart(workspace.name, run_id, "loss", start=19_990, end=20_010)
    assert detail["x"] == list(range(19_990, 20_011)) and not detail["downsampled"]

    by_time = tr.get_metric_chart(workspace.name, run_id, "loss", axis="timestamp", points=400)
    assert by_time["count"] == 60_000 and by_time["x"][0] == 1_700_000_000_000


def test_chart_arguments_are_checked(workspace) -> None:
    run_id = _seed(workspace, 10)
    tr = _tracking(workspace)
    with pytest.raises(InvalidInput):
        tr.get_metric_chart(workspace.name, run_id, "loss", axis="epoch")
    with pytest.raises(InvalidInput):
        tr.get_metric_chart(workspace.name, run_id, "loss", points=1)
    assert tr.get_metric_chart(workspace.name, run_id, "nothing")["count"] == 0


def test_finished_runs_charts_are_reused_until_the_run_resumes(workspace) -> None:
    run_id = _seed(workspace, 50)
    tr = _tracking(workspace)
    live = tr.get_metric_chart(workspace.name, run_id, "loss")
    assert live is not tr.get_metric_chart(workspace.name, run_id, "loss")  # running: read anew
    tr.set_run_status(workspace.name, run_id, "Completed")
    done = tr.get_metric_chart(workspace.name, run_id, "loss")
    assert tr.get_metric_chart(workspace.name, run_id, "loss") is done
    tr.set_run_status(workspace.name, run_id, "Running")
    tr.log_batch(workspace.name, run_id, metrics=[("loss", 2.0, 50, None)])
    tr.set_run_status(workspace.name, run_id, "Completed")
    again = tr.get_metric_chart(workspace.name, run_id, "loss")
    assert again["count"] == 51 and again["y"][-1] == 2.0
