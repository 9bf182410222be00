"""Charts in headless Chromium: readable ticks and tooltips, and the experiment's Charts view."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from studio_kit import SCREENSHOTS, LiveServer, Page

from cumulo.core.settings import Settings

pytestmark = pytest.mark.slow


@dataclass
class Sweep:
    server: LiveServer
    home: Path
    workspace: str
    experiment_id: int
    runs: dict[str, str] = field(default_factory=dict)  # display name -> run id


def _seed(home: Path) -> tuple[str, int, dict[str, str]]:
    from cumulo import Workspace
    from cumulo.sdk.workspace import Experiment

    ws = Workspace.create("sweeps", home=home)
    exp = Experiment(ws, "lr-sweep")
    runs: dict[str, str] = {}
    for i in range(12):
        optimizer = ["adam", "sgd", "rmsprop"][i % 3]
        run = exp.start_logging(display_name=f"run-{i:02d}")
        run.log_params({"optimizer": optimizer, "seed": i, "batch": 32})
        points = []
        for step in range(50):
            points.append(("lr", 3e-4 * (1 - step / 100), step))
            points.append(("loss", (1 + i % 3) * math.exp(-step / 20) + i / 100, step))
            points.append(("grad_norm", 10 ** (-5 + 3 * step / 49), step))
        ws.transport.tracking.log_batch(
            ws.name, run.id, metrics=[(k, v, s, None) for k, v, s in points]
        )
        run.log("accuracy", 0.5 + i / 40)
        run.complete()
        runs[run.display_name] = run.id
    ws.flush()
    return ws.name, exp.id, runs


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    home = tmp_path_factory.mktemp("charts") / "home"
    workspace, experiment_id, runs = _seed(home)
    with LiveServer(Settings.load(home=home, environ={})) as server:
        yield Sweep(server, home, workspace, experiment_id, runs)


@pytest.fixture
def tab(browser: Any, sweep: Sweep) -> Iterator[Page]:
    page = Page(browser, sweep.server.url)
    yield page
    page.context.close()
    assert page.errors == [], f"JavaScript errors on the page: {page.errors}"


def _ticks(page: Any, selector: str, axis: int = 1) -> list[str]:
    page.wait_for_selector(f"{selector}[data-drawn]")
    return list(
        page.evaluate(f"document.querySelector('{selector} .plot')._uplot.axes[{axis}]._values")
    )


def test_small_values_keep_their_digits_on_ticks_and_in_the_legend(tab: Page, sweep: Sweep) -> None:
    run_id = sweep.runs["run-00"]
    page = tab.open(f"/ws/{sweep.workspace}/runs/{run_id}/metrics")
    lr = _ticks(page, ".chart[data-key=lr]")
    assert lr and "0" not in lr, lr  # 3e-4 is not zero
    assert len(set(lr)) == len(lr)  # neighbouring ticks are told apart
    assert all("e-4" in t or "e-5" in t for t in lr), lr
    grad = _ticks(page, ".chart[data-key=grad_norm]")
    assert len(set(grad)) == len(grad), grad
    page.check("#chart-log")
    page.wait_for_function(
        "document.querySelector('.chart[data-key=grad_norm] .plot')._uplot.scales.y.distr === 3"
    )
    logged = _ticks(page, ".chart[data-key=grad_norm]")
    assert "1e-5" in logged and "0" not in logged, logged


def test_compare_link_is_no_link_until_a_run_is_picked(tab: Page, sweep: Sweep) -> None:
    page = tab.open(f"/ws/{sweep.workspace}/experiments/{sweep.experiment_id}")
    link = page.locator("#compare-link")
    assert link.inner_text() == "Compare (0)" and link.get_attribute("href") is None
    page.locator("#runs tbody tr", has_text="run-03").locator("input.pick").check()
    assert link.get_attribute("href", timeout=2000).endswith(f"runs={sweep.runs['run-03']}")
    page.locator("#runs tbody tr", has_text="run-03").locator("input.pick").uncheck()
    assert link.get_attribute("href") is None


def _loss(i: int, step: int) -> float:
    return (1 + i % 3) * math.exp(-step / 20) + i / 100


def _hover(page: Any, panel: str, fraction: float) -> dict[str, Any]:
    """Move over a panel at ``fraction`` of its width; what its tooltip says."""
    over = page.locator(f"{panel} .u-over")
    box = over.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] * 0.5)
    tip = page.locator(f"{panel} .chart-tip")
    tip.wait_for()
    rows = {}
    for row in tip.locator(".tip-row").all():
        name = row.locator("span").nth(1).inner_text()
        rows[name] = float(row.locator("b").inner_text())
    return {"x": tip.locator(".tip-x").inner_text(), "rows": rows}


def test_charts_view_overlays_every_run_with_values_at_the_cursor(tab: Page, sweep: Sweep) -> None:
    base = f"/ws/{sweep.workspace}/experiments/{sweep.experiment_id}"
    page = tab.open(base)
    page.click("#charts-link")
    page.wait_for_url(re.compile(r"/charts"))
    page.wait_for_selector("body[data-charts-ready=true]")
    keys = page.locator(".panel").evaluate_all("els => els.map(e => e.dataset.key)")
    assert keys == ["accuracy", "grad_norm", "loss", "lr"]
    page.wait_for_selector(".panel[data-key=loss][data-drawn='12']")
    # Axis titles and readable ticks.
    axes = page.evaluate(
        "document.querySelector('.panel[data-key=loss] .plot')._uplot.axes.map(a => a.label)"
    )
    assert axes == ["step", "loss"]
    tip = _hover(page, ".panel[data-key=loss]", 0.5)
    step = int(tip["x"].split()[1])
    assert len(tip["rows"]) == 10  # the ten nearest the cursor, of twelve
    for name, value in tip["rows"].items():
        i = int(name.split("-")[1])
        assert value == pytest.approx(_loss(i, step), rel=1e-4), (name, step)
    tab.shot("30-charts-view")

    # Colours are the run's own, the same in the runs table and the charts.
    run_id = sweep.runs["run-04"]
    in_charts = page.locator(f"#chart-runs tr[data-run='{run_id}'] .swatch").get_attribute("style")
    table = tab.open(base)
    in_table = table.locator(f"#runs tr[data-run='{run_id}'] .swatch").get_attribute("style")
    assert in_charts == in_table and "hsl(" in (in_table or "")


def test_charts_view_hides_groups_and_shares_its_view_by_url(
    tab: Page, sweep: Sweep, browser: Any
) -> None:
    page = tab.open(f"/ws/{sweep.workspace}/experiments/{sweep.experiment_id}/charts")
    page.wait_for_selector(".panel[data-key=loss][data-drawn='12']")
    page.locator(f"#chart-runs tr[data-run='{sweep.runs['run-05']}'] input.eye").uncheck()
    page.wait_for_selector(".panel[data-key=loss][data-drawn='11']")
    assert page.inner_text("#runs-visible") == "11"
    assert "run-05" not in _hover(page, ".panel[data-key=loss]", 0.3)["rows"]

    # Group by optimizer: one mean line per value, with its min-max band.
    page.select_option("#charts-group", "params.optimizer")
    page.wait_for_selector(".panel[data-key=loss][data-series='3']")
    tip = _hover(page, ".panel[data-key=loss]", 0.4)
    step = int(tip["x"].split()[1])
    adam = [i for i in range(12) if i % 3 == 0]  # runs 0, 3, 6, 9: none hidden
    mean = sum(_loss(i, step) for i in adam) / len(adam)
    assert tip["rows"]["adam (4 runs, mean)"] == pytest.approx(mean, rel=1e-4)
    legend = page.locator(".panel[data-key=loss] .u-legend .u-series:visible .u-label")
    assert legend.all_inner_texts() == [
        "adam (4 runs, mean)",
        "rmsprop (3 runs, mean)",  # run-05 is hidden
        "sgd (4 runs, mean)",
    ]
    page.fill("#panel-search", "lo")
    assert page.locator(".panel:visible").count() == 1  # loss only
    url = page.url
    assert "group=params.optimizer" in url and sweep.runs["run-05"] in url and "q=lo" in url

    # The URL alone opens the same view elsewhere (a fresh browser profile).
    other = Page(browser, sweep.server.url)
    try:
        shared = other.open(url.removeprefix(sweep.server.url))
        shared.wait_for_selector(".panel[data-key=loss][data-series='3']")
        assert shared.input_value("#charts-group") == "params.optimizer"
        assert shared.input_value("#panel-search") == "lo"
        eye = shared.locator(f"#chart-runs tr[data-run='{sweep.runs['run-05']}'] input.eye")
        assert not eye.is_checked()
        assert other.errors == []
    finally:
        other.context.close()
    # Opened again without a view in the URL, the experiment's last view comes back.
    page = tab.open(f"/ws/{sweep.workspace}/experiments/{sweep.experiment_id}/charts")
    page.wait_for_selector(".panel[data-key=loss][data-series='3']")
    assert "group=params.optimizer" in page.url


def test_runs_table_shows_what_varies_and_the_best_of_each_metric(tab: Page, sweep: Sweep) -> None:
    page = tab.open(f"/ws/{sweep.workspace}/experiments/{sweep.experiment_id}")
    headers = page.locator("#runs thead th a[title]").evaluate_all("els => els.map(e => e.title)")
    assert "params.optimizer" in headers and "params.seed" in headers
    assert "params.batch" not in headers  # the same in every run: tells none apart
    assert page.inner_text("#runs-count") == "Runs 1–12 of 12"
    best = page.locator("#runs td.best")
    column = headers.index("metrics.accuracy")
    accuracy = page.locator(f"#runs tbody tr td.num:nth-child({9 + column})")
    assert accuracy.count() == 12
    best_accuracy = page.locator("#runs tbody tr", has=page.locator("td.best")).filter(
        has_text="run-11"
    )
    assert best_accuracy.count() == 1  # the highest accuracy (0.775) is run-11's
    loss_best = page.locator("#runs tbody tr", has_text="run-00").locator("td.best")
    assert loss_best.count() >= 1  # the lowest last loss is run-00's (a loss: lowest wins)
    assert best.count() == len([h for h in headers if h.startswith("metrics.")])


# The documentation's pictures are refreshed on request only, so a test run leaves the
# checkout as it found it: CUMULO_UPDATE_DOCS_SCREENSHOTS=1 writes them into docs/.
DOCS_SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("CUMULO_UPDATE_DOCS_SCREENSHOTS") == "1"
    else SCREENSHOTS / "docs"
)


def _context_page(browser: Any, base: str, **options: Any) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(**options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return context, page, errors


def _background(page: Any) -> str:
    return str(page.evaluate("getComputedStyle(document.body).backgroundColor"))


def test_dark_mode_follows_the_system_and_the_toggle(browser: Any, sweep: Sweep) -> None:
    base = sweep.server.url
    charts = f"/ws/{sweep.workspace}/experiments/{sweep.experiment_id}/charts"
    context, page, errors = _context_page(
        browser, base, viewport={"width": 1366, "height": 768}, color_scheme="dark"
    )
    try:
        page.goto(base + charts + "?group=params.optimizer")
        page.wait_for_selector(".panel[data-key=loss][data-series='3']")
        assert _background(page) == "rgb(13, 17, 23)"  # the system asks for dark
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_SHOTS / "charts-dark.png"))
        page.click("#theme-toggle")  # the person prefers light here
        assert page.get_attribute("html", "data-theme") == "light"
        assert _background(page) == "rgb(246, 247, 249)"
        page.goto(base + f"/ws/{sweep.workspace}/experiments/{sweep.experiment_id}")
        page.wait_for_selector("body[data-ready=true]")
        assert _background(page) == "rgb(246, 247, 249)"  # kept across pages
        page.click("#theme-toggle")
        assert _background(page) == "rgb(13, 17, 23)"
        assert errors == []
    finally:
        context.close()


def test_phone_width_keeps_name_status_and_a_metric(browser: Any, sweep: Sweep) -> None:
    base = sweep.server.url
    context, page, errors = _context_page(
        browser, base, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    try:
        page.goto(base + f"/ws/{sweep.workspace}/experiments/{sweep.experiment_id}")
        page.wait_for_selector("body[data-ready=true]")
        shown = page.locator("#runs thead th:visible").all_inner_texts()
        assert [h.split()[0] for h in shown] == ["Run", "Status", "accuracy"], shown
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1  # nothing wider than the screen
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_SHOTS / "phone-runs.png"))
        page.goto(base + f"/ws/{sweep.workspace}/experiments/{sweep.experiment_id}/charts")
        page.wait_for_selector(".panel[data-key=loss][data-drawn='12']")
        boxes = page.locator(".panel").evaluate_all(
            "els => els.map(e => e.getBoundingClientRect()).map(r => [r.x, r.width])"
        )
        assert len({round(x) for x, _ in boxes}) == 1  # one chart a row
        assert all(w > 300 for _, w in boxes)
        page.screenshot(path=str(DOCS_SHOTS / "phone-charts.png"))
        assert errors == []
    finally:
        context.close()


def test_screenshots_of_the_charts_view_and_compare(tab: Page, sweep: Sweep) -> None:
    page = tab.open(f"/ws/{sweep.workspace}/experiments/{sweep.experiment_id}/charts")
    page.wait_for_selector(".panel[data-key=loss][data-drawn='12']")
    page.wait_for_selector(".panel[data-key=lr][data-drawn='12']")
    _hover(page, ".panel[data-key=loss]", 0.35)
    DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_SHOTS / "charts.png"))
    ids = "&".join(f"runs={sweep.runs[f'run-{i:02d}']}" for i in (0, 4, 8))
    page = tab.open(f"/ws/{sweep.workspace}/compare?{ids}")
    # It opens on a metric with a history (accuracy, first by name, is one number a run).
    assert page.locator("#overlay").get_attribute("data-key") == "grad_norm"
    page = tab.open(f"/ws/{sweep.workspace}/compare?{ids}&metric=loss")
    page.wait_for_selector("#overlay[data-drawn='3']")
    colours = page.evaluate(
        "document.querySelector('#overlay .plot')._uplot.series.slice(1).map(s => s.stroke())"
    )
    table = tab.open(f"/ws/{sweep.workspace}/experiments/{sweep.experiment_id}")
    for i, colour in zip((0, 4, 8), colours, strict=True):
        swatch = table.locator(f"#runs tr[data-run='{sweep.runs[f'run-{i:02d}']}'] .swatch")
        assert colour.replace(" ", "") in (swatch.get_attribute("style") or "").replace(" ", "")
    page = tab.open(f"/ws/{sweep.workspace}/compare?{ids}&metric=loss")
    page.wait_for_selector("#overlay[data-drawn='3']")
    page.screenshot(path=str(DOCS_SHOTS / "compare.png"))


def test_compare_draws_scalar_bars_a_scatter_and_the_parallel_colour_bar(
    tab: Page, sweep: Sweep
) -> None:
    picked = (0, 4, 8)
    ids = "&".join(f"runs={sweep.runs[f'run-{i:02d}']}" for i in picked)
    page = tab.open(f"/ws/{sweep.workspace}/compare?{ids}&metric=loss")
    page.wait_for_selector("body[data-compare-ready=true]")
    # A bar chart a metric, a bar a run in the run's colour, at the run's last value.
    panels = page.locator("#scalar-bars .bar-panel")
    keys = panels.evaluate_all("els => els.map(e => e.dataset.key)")
    assert keys == ["metrics.accuracy", "metrics.grad_norm", "metrics.loss", "metrics.lr"]
    bars = page.evaluate(
        "(() => { const u = document.querySelector("
        "'.bar-panel[data-key=\"metrics.loss\"] .plot')._uplot;"
        " return u.data.slice(1).map((c, i) => [c[i], u.series[i + 1].stroke()]); })()"
    )
    for (value, colour), i in zip(bars, picked, strict=True):
        assert value == pytest.approx(_loss(i, 49), rel=1e-6)
        assert colour.startswith("hsl(")

    # Min, max and last of each metric with a history, in rows of their own.
    rows = {
        row.locator("th").inner_text(): [float(c) for c in row.locator("td").all_inner_texts()]
        for row in page.locator("#compare-table tr", has_text="loss ·").all()
    }
    assert set(rows) == {"loss · last", "loss · min", "loss · max"}
    for j, i in enumerate(picked):
        assert rows["loss · max"][j] == pytest.approx(_loss(i, 0), rel=1e-4)
        assert rows["loss · min"][j] == pytest.approx(_loss(i, 49), rel=1e-4)
        assert rows["loss · last"][j] == pytest.approx(_loss(i, 49), rel=1e-4)
    assert page.locator("#compare-table tr th", has_text="accuracy · min").count() == 0

    # The scatter opens on a param that differs against the chosen metric; any two fit.
    assert page.input_value("#scatter-x") == "params.optimizer"
    assert page.input_value("#scatter-y") == "metrics.loss"
    page.select_option("#scatter-x", "params.seed")
    page.select_option("#scatter-y", "metrics.accuracy")
    page.wait_for_selector("#scatter[data-points='3']")
    data = page.evaluate("document.querySelector('#scatter .plot')._uplot.data")
    assert data[0] == [0, 4, 8]
    assert [col[j] for j, col in enumerate(data[1:])] == [0.5, 0.6, 0.7]
    page.locator("#scatter").scroll_into_view_if_needed()
    box = page.locator("#scatter .u-over").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "document.querySelector('#scatter .chart-info').textContent"
        ".includes('run-04: params.seed 4, metrics.accuracy 0.6')"
    )

    # Parallel coordinates: a colour bar over the metric's range; legend in the lines' colours.
    legend = page.locator("#parallel-legend")
    assert legend.locator(".colourbar").count() == 1
    lo, hi = float(legend.locator(".lo").inner_text()), float(legend.locator(".hi").inner_text())
    assert lo == pytest.approx(_loss(0, 49), rel=1e-4) and hi == pytest.approx(
        _loss(8, 49), rel=1e-4
    )
    lines = page.locator("#parallel path.line").evaluate_all(
        "els => els.map(e => getComputedStyle(e).stroke)"
    )
    swatches = legend.locator(".legend-run .swatch").evaluate_all(
        "els => els.map(e => getComputedStyle(e).backgroundColor)"
    )
    assert lines == swatches and len(set(lines)) == 3
    page.add_style_tag(content="header.top { position: static; }")  # one header, at the top
    tab.shot("31-compare-analysis", full_page=True)
    DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_SHOTS / "compare-analysis.png"), full_page=True)


# The scale: 200 runs, 5 metrics each, 1,000 points a metric (a million points).
BIG_RUNS, BIG_METRICS, BIG_POINTS = 200, 5, 1000


def _big(i: int, k: int, step: int) -> float:
    return math.exp(-step / (100 + i)) + 0.01 * k + 0.001 * math.sin(step)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    from cumulo import Workspace

    home = tmp_path_factory.mktemp("charts-big") / "home"
    ws = Workspace.create("big", home=home)
    t = ws.transport.tracking
    exp = t.get_or_create_experiment(ws.name, "scale")
    for i in range(BIG_RUNS):
        run = t.create_run(ws.name, exp.id, display_name=f"run-{i:03d}")
        series = [
            (f"m{k}", _big(i, k, s), s, None) for k in range(BIG_METRICS) for s in range(BIG_POINTS)
        ]
        t.log_batch(ws.name, run.id, metrics=series, params={"opt": ["adam", "sgd"][i % 2]})
        t.set_run_status(ws.name, run.id, "Completed")
    with LiveServer(Settings.load(home=home, environ={})) as server:
        yield server, f"/ws/{ws.name}/experiments/{exp.id}/charts"


def test_charts_view_draws_200_runs_of_5_metrics_of_1000_points(
    browser: Any, big: tuple[LiveServer, str]
) -> None:
    server, path = big
    tab = Page(browser, server.url)
    try:
        page = tab.open(path)
        for k in range(BIG_METRICS):
            page.wait_for_selector(
                f".panel[data-key=m{k}][data-drawn='{BIG_RUNS}']", timeout=120_000
            )
        counts = page.evaluate(
            "Array.from(document.querySelectorAll('.panel .plot')).map(el => "
            "el._uplot.data.slice(1).reduce((n, c) => n + c.filter(v => v !== null).length, 0))"
        )
        assert counts == [BIG_RUNS * BIG_POINTS] * BIG_METRICS  # every point of every run
        for k, fraction in ((0, 0.3), (3, 0.7)):
            tip = _hover(page, f".panel[data-key=m{k}]", fraction)
            step = int(tip["x"].split()[1])
            assert len(tip["rows"]) == 10
            for name, value in tip["rows"].items():
                i = int(name.split("-")[1])
                assert value == pytest.approx(_big(i, k, step), rel=1e-5), (name, step)
        tab.shot("32-charts-200-runs")
        # Grouped by a param: two mean lines over a hundred runs each.
        page.select_option("#charts-group", "params.opt")
        page.wait_for_selector(".panel[data-key=m0][data-series='2']", timeout=60_000)
        tip = _hover(page, ".panel[data-key=m0]", 0.5)
        step = int(tip["x"].split()[1])
        adam = [_big(i, 0, step) for i in range(0, BIG_RUNS, 2)]
        assert tip["rows"]["adam (100 runs, mean)"] == pytest.approx(sum(adam) / 100, rel=1e-5)
        assert tab.errors == []
    finally:
        tab.context.close()


def test_an_empty_experiment_shows_how_to_log_a_first_run(tab: Page, sweep: Sweep) -> None:
    from cumulo import Experiment, Workspace

    ws = Workspace.get(sweep.workspace, home=sweep.home)
    empty = Experiment(ws, "fresh-idea")
    for path in (f"/experiments/{empty.id}", f"/experiments/{empty.id}/charts"):
        page = tab.open(f"/ws/{sweep.workspace}{path}")
        guide = page.locator("#first-run")
        assert 'Experiment(ws, "fresh-idea").start_logging()' in guide.inner_text()
        assert f"{sweep.server.url}/ws/{sweep.workspace}" in guide.inner_text()  # for MLflow


def test_a_metric_logged_once_a_run_is_a_bar_a_run(tab: Page, sweep: Sweep) -> None:
    page = tab.open(f"/ws/{sweep.workspace}/experiments/{sweep.experiment_id}/charts")
    panel = ".panel[data-key=accuracy]"
    page.wait_for_selector(f"{panel}[data-kind=bars][data-drawn='12']")
    # Bars in the runs' order (newest first): run-11's leftmost, run-00's rightmost.
    assert _hover(page, panel, 0.5 / 12)["rows"] == {"run-11": 0.775}
    assert _hover(page, panel, 11.5 / 12)["rows"] == {"run-00": 0.5}
