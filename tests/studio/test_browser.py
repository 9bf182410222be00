"""The studio in headless Chromium against a real server: what a person does, end to end.

Each test leaves a screenshot of the page it checked in test-artifacts/screenshots/.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from studio_kit import Page, Seeded

pytestmark = pytest.mark.slow


def test_home_lists_workspaces_recent_and_running_runs(tab: Page, seeded: Seeded) -> None:
    page = tab.open("/")
    assert page.locator("h1").inner_text() == "Home"
    assert page.get_by_role("link", name=seeded.workspace).count() >= 1
    recent = page.locator("section", has_text="Recent runs")
    assert recent.locator("tbody tr").count() >= 5
    assert "Running now" in page.inner_text("#active-runs")
    tab.shot("01-home")


def test_experiments_create_archive_restore_delete(tab: Page, seeded: Seeded) -> None:
    page = tab.open(f"/ws/{seeded.workspace}/experiments")
    row = page.locator("#experiments tr", has_text="digits")
    assert row.locator("td.num").inner_text() == "66"  # 63 top-level runs, 3 sweep children
    page.fill("input[name=name]", "ablation")
    page.click("form.create button")
    page.wait_for_url(re.compile(r"/experiments/\d+$"))
    assert "ablation" in page.inner_text("h1")
    page = tab.open(f"/ws/{seeded.workspace}/experiments")
    row = page.locator("#experiments tr", has_text="ablation")
    row.get_by_role("button", name="Archive").click()
    page.wait_for_load_state()
    assert page.locator("#experiments tr", has_text="ablation").count() == 0
    page.click("text=Archived")
    row = page.locator("#experiments tr", has_text="ablation")
    row.get_by_role("button", name="Restore").click()
    page.wait_for_load_state()
    assert page.locator("#experiments tr", has_text="ablation").count() == 1
    tab.shot("02-experiments")
    page.once("dialog", lambda dialog: dialog.accept())
    row = page.locator("#experiments tr", has_text="ablation")
    row.get_by_role("button", name="Delete").click()
    page.wait_for_load_state()
    assert page.locator("#experiments tr", has_text="ablation").count() == 0


def _column(page, index: int) -> list[str]:
    return page.locator(f"#runs tbody tr:not(.child) td:nth-child({index})").all_inner_texts()


def test_runs_table_filters_sorts_and_pages(tab: Page, seeded: Seeded) -> None:
    page = tab.open(f"/ws/{seeded.workspace}/experiments/{seeded.experiment_id}")
    assert page.locator("#runs tbody tr:not(.child)").count() == 50  # a page, not every run
    headers = page.locator("#runs thead th").all_inner_texts()
    acc = next(i for i, h in enumerate(headers, 1) if h.startswith("accuracy"))
    tab.shot("03-runs-table")

    page.fill("input.filter", "metrics.accuracy > 0.8 AND params.model = 'rf'")
    page.press("input.filter", "Enter")
    page.wait_for_url(re.compile(r"filter=metrics"))
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length < 50")
    values = [float(v) for v in _column(page, acc)]
    assert values and all(v > 0.8 for v in values)

    page.locator("#runs thead th", has_text="accuracy").locator("a").click()
    page.wait_for_url(re.compile(r"order=metrics"))
    page.wait_for_selector("#runs thead th:has-text('▼')")
    values = [float(v) for v in _column(page, acc)]
    assert values == sorted(values, reverse=True)
    page.locator("#runs thead th", has_text="accuracy").locator("a").click()
    page.wait_for_selector("#runs thead th:has-text('▲')")
    values = [float(v) for v in _column(page, acc)]
    assert values == sorted(values)
    tab.shot("04-runs-filtered-sorted")

    # A bad filter says what is wrong instead of failing the page.
    page.fill("input.filter", "metrics.accuracy >>> 1")
    page.press("input.filter", "Enter")
    page.wait_for_selector("#filter-error")

    # Paging: the second page holds other runs, and its URL can be shared.
    page = tab.open(f"/ws/{seeded.workspace}/experiments/{seeded.experiment_id}")
    first = set(_column(page, 2))
    page.click("#next-page")
    page.wait_for_url(re.compile(r"page=2"))
    second = set(_column(page, 2))
    assert second and not first & second
    url = page.url
    assert set(_column(tab.open(url.removeprefix(tab.base)), 2)) == second


def test_runs_table_nests_children_under_their_parent_and_pins_the_name(
    tab: Page, seeded: Seeded
) -> None:
    page = tab.open(f"/ws/{seeded.workspace}/experiments/{seeded.experiment_id}")
    sweep = seeded.runs["sweep"]
    children = page.locator(f"#runs tbody tr[data-parent='{sweep}']")
    assert children.count() == 3 and not children.first.is_visible()
    expand = page.locator(f"#runs tr[data-run='{sweep}'] button.expand")
    assert expand.inner_text() == "▸ 3"
    expand.click()
    names = children.locator("td.name a").all_inner_texts()
    assert names == ["sweep-child-0", "sweep-child-1", "sweep-child-2"]
    assert all(children.nth(i).is_visible() for i in range(3))
    # The children sit right under their parent, before the next top-level run.
    order = page.locator("#runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)")
    at = order.index(sweep)
    assert [
        page.locator(f"#runs tr[data-run='{r}']").get_attribute("data-parent")
        for r in order[at + 1 : at + 4]
    ] == [sweep] * 3
    tab.shot("04b-runs-nested")
    expand.click()
    assert not children.first.is_visible()

    # Scrolled sideways, the name column stays where it is; the others move.
    page.set_viewport_size({"width": 820, "height": 700})
    name = page.locator(f"#runs tr[data-run='{sweep}'] td.name")
    user = page.locator(f"#runs tr[data-run='{sweep}'] td.meta").last
    before = (name.bounding_box(), user.bounding_box())
    page.locator(".tablewrap").evaluate("wrap => { wrap.scrollLeft = 300; }")
    page.wait_for_function("document.querySelector('.tablewrap').scrollLeft > 0")
    after = (name.bounding_box(), user.bounding_box())
    assert after[0]["x"] == pytest.approx(before[0]["x"], abs=2)
    assert after[1]["x"] < before[1]["x"] - 100


def test_column_picker_offers_every_key_of_the_experiment(tab: Page, seeded: Seeded) -> None:
    page = tab.open(f"/ws/{seeded.workspace}/experiments/{seeded.experiment_id}")
    picker = page.locator("details.colpick")
    assert picker.locator("label[data-col='params.warmup']").count() == 0  # not on this page
    picker.locator("summary").click()
    # Opening the picker asks the server for every key the experiment's runs use.
    warmup = picker.locator("label[data-col='params.warmup']")
    warmup.wait_for()
    assert picker.locator("label[data-col='tags.stage']").count() == 1
    picker.locator(".colpick-find").fill("warm")
    assert picker.locator("label[data-col='metrics.accuracy']").is_hidden()
    warmup.locator("input").check()
    page.wait_for_url(re.compile(r"cols=params.warmup"))
    page.wait_for_selector("#runs thead th:has-text('warmup')")
    # The columns already shown stay chosen.
    assert "cols=metrics.accuracy" in page.url


def test_run_metrics_chart_draws_downsampled_and_zooms(tab: Page, seeded: Seeded) -> None:
    run_id = seeded.runs["best"]
    page = tab.open(f"/ws/{seeded.workspace}/runs/{run_id}/metrics")
    chart = page.locator(".chart[data-key=val_loss]")
    chart.locator("canvas").wait_for()
    page.wait_for_selector(".chart[data-key=val_loss][data-drawn]")
    drawn = int(chart.get_attribute("data-drawn") or 0)
    assert 100 < drawn < 30_000  # downsampled on the server
    assert "30,000 points" in chart.locator(".chart-info").inner_text()
    assert page.locator("table", has_text="precision").count() == 1  # row records as a table
    single = page.locator(".chart[data-key=accuracy] .single-value")  # one point: its value
    single.wait_for()
    assert single.inner_text().split() == ["0.95", "step", "0"]
    tab.shot("05-run-metrics")

    # Drag across a tenth of the chart: the detail of that range is fetched and drawn.
    box = chart.locator(".u-over").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.45, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.up()
    page.wait_for_function(
        "document.querySelector('.chart[data-key=val_loss] .chart-info').textContent"
        ".includes('zoomed')"
    )
    page.check("#chart-log")
    page.fill("#chart-smooth", "0.8")
    page.dispatch_event("#chart-smooth", "input")
    assert chart.locator("canvas").count() == 1


def test_run_overview_shows_error_with_failing_line(tab: Page, seeded: Seeded) -> None:
    page = tab.open(f"/ws/{seeded.workspace}/runs/{seeded.runs['broken']}")
    error = page.locator("#run-error")
    assert "expected a batch of shape (32, 4)" in error.inner_text()
    assert "_train_step" in error.locator(".frame.last").inner_text()
    assert "raise ValueError" in error.locator(".frame.last pre").inner_text()
    assert page.locator(".runhead .status").inner_text() == "Failed"
    tab.shot("06-run-failed")

    page = tab.open(f"/ws/{seeded.workspace}/runs/{seeded.runs['best']}")
    assert "mlp" in page.locator("section", has_text="Parameters").inner_text()
    assert page.locator("ol.timeline li").count() >= 2
    tab.shot("07-run-overview")


def test_logs_tail_live_while_the_run_runs(tab: Page, seeded: Seeded) -> None:
    from cumulo import Workspace
    from cumulo.sdk.workspace import Experiment

    ws = Workspace.get(seeded.workspace, home=seeded.home)
    run = Experiment(ws, "digits").start_logging(display_name="live")
    run.upload_file("logs/std_log.txt", io.BytesIO(b"epoch 1 loss 0.9\n"))
    page = tab.open(f"/ws/{seeded.workspace}/runs/{run.id}/logs")
    page.wait_for_function("document.querySelector('#log').textContent.includes('epoch 1')")
    assert "live" in page.inner_text("#log-state")
    log = b"epoch 1 loss 0.9\n" + b"".join(f"epoch {e} loss {1 / e:.3f}\n".encode() for e in (2, 3))
    run.upload_file("logs/std_log.txt", io.BytesIO(log))
    page.wait_for_function("document.querySelector('#log').textContent.includes('epoch 3')")
    assert page.inner_text("#log").count("epoch 1") == 1  # appended, not reloaded
    tab.shot("08-run-logs-live")
    run.complete()
    page.wait_for_function("document.querySelector('#log-state').textContent === 'Completed'")
    page.wait_for_selector("#run-header .status:has-text('Completed')")


def test_compare_two_runs_from_the_table(tab: Page, seeded: Seeded) -> None:
    page = tab.open(
        f"/ws/{seeded.workspace}/experiments/{seeded.experiment_id}"
        "?filter=attributes.run_name LIKE 'trial-0%'&order=attributes.run_name ASC"
    )
    page.locator("#runs tbody tr", has_text="trial-01").locator("input.pick").check()
    page.locator("#runs tbody tr", has_text="trial-02").locator("input.pick").check()
    assert page.inner_text("#compare-link") == "Compare (2)"
    page.click("#compare-link")
    page.wait_for_url(re.compile(r"/compare\?"))
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#overlay[data-drawn='2']")
    differs = page.locator("#compare-table tr.differs th").all_inner_texts()
    assert "lr" in differs and "model" in differs and "team" not in differs
    assert page.locator("#parallel path.line").count() == 2
    tab.shot("09-compare")


def test_outputs_browser_previews_and_downloads(tab: Page, seeded: Seeded) -> None:
    base = f"/ws/{seeded.workspace}/runs/{seeded.runs['best']}"
    page = tab.open(f"{base}/outputs")
    page.click("#files >> text=outputs/")
    page.click("#files >> text=predictions.csv")
    page.wait_for_selector("table.csv")
    assert page.locator("table.csv thead th").all_inner_texts() == ["id", "label", "score"]
    assert page.locator("table.csv tbody tr").count() == 2
    page.click("#files >> text=metrics.json")
    page.wait_for_selector("pre.json")
    assert '"acc": 0.93' in page.inner_text("pre.json")
    page.click("#files >> text=plot.png")
    img = page.locator("img.previewimg")
    img.wait_for()
    page.wait_for_function("document.querySelector('img.previewimg').naturalWidth === 32")
    tab.shot("10-run-outputs")
    with page.expect_download() as info:
        page.locator("#preview").get_by_role("link", name="Download").click()
    download = info.value
    assert download.suggested_filename == "plot.png"
    assert Path(download.path()).read_bytes()[:4] == b"\x89PNG"

    page = tab.open(f"{base}/code")
    page.click("#files >> text=train.py")
    assert "print('training')" in page.inner_text("pre.text")
    tab.shot("11-run-code")


def test_images_gallery_and_child_runs(tab: Page, seeded: Seeded) -> None:
    page = tab.open(f"/ws/{seeded.workspace}/runs/{seeded.runs['best']}/images")
    images = page.locator(".gallery img")
    assert images.count() == 2
    assert page.locator(".image-sync .step-value").inner_text() == "1"  # the last of 0, 1
    page.click(".all-images summary")  # every image of the name at once
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.gallery img')).every(i => i.naturalWidth === 64)"
    )
    tab.shot("12-run-images")
    page = tab.open(f"/ws/{seeded.workspace}/runs/{seeded.runs['sweep']}/children")
    assert page.locator("tbody tr").count() == 3
    page.click("text=Compare selected")
    page.wait_for_selector("#parallel path.line")
    assert page.locator("#parallel path.line").count() == 3


def test_links_mlflow_prints_open_the_same_pages(tab: Page, seeded: Seeded) -> None:
    """MLflow's client prints links to its UI (``/#/experiments/N/runs/ID``) after a run."""
    ws, exp, run_id = seeded.workspace, seeded.experiment_id, seeded.runs["best"]
    page = tab.open(f"/ws/{ws}/#/experiments/{exp}/runs/{run_id}")
    page.wait_for_url(re.compile(rf"/ws/{ws}/runs/{run_id}$"))
    assert "best" in page.inner_text("h1")
    page = tab.open(f"/ws/{ws}/#/experiments/{exp}")
    page.wait_for_url(re.compile(rf"/ws/{ws}/experiments/{exp}$"))


def _slide(sync: Any, index: int) -> None:
    sync.locator(".step-slider").evaluate(
        "(el, i) => { el.value = String(i); el.dispatchEvent(new Event('input')); }", index
    )


def test_image_steps_slide_and_runs_show_side_by_side(
    tab: Page, seeded: Seeded, tmp_path: Path
) -> None:
    from studio_kit import png

    from cumulo import Workspace
    from cumulo.sdk.workspace import Experiment

    ws = Workspace.get(seeded.workspace, home=seeded.home)
    run = Experiment(ws, "digits").start_logging(display_name="painter")
    for step, rgb in ((0, (200, 0, 0)), (5, (0, 200, 0)), (10, (0, 0, 200))):
        image = tmp_path / f"{step}.png"
        image.write_bytes(png(40 + step, 30, rgb))
        run.log_image("samples", path=image, step=step, description=f"epoch {step}")
    run.complete()
    ws.flush()

    page = tab.open(f"/ws/{seeded.workspace}/runs/{run.id}/images")
    sync = page.locator(".image-sync[data-key=samples]")
    figure = sync.locator(".step-image")
    assert sync.locator(".step-value").inner_text() == "10"  # opens on the last step
    assert figure.locator("img").get_attribute("src", timeout=2000).endswith("/0002.png")
    _slide(sync, 0)
    assert figure.locator("figcaption").inner_text() == "step 0 · epoch 0"
    assert figure.locator("img").get_attribute("src").endswith("/0000.png")
    _slide(sync, 1)
    assert sync.locator(".step-value").inner_text() == "5"
    page.wait_for_function(
        "document.querySelector('.image-sync .step-image img').naturalWidth === 45"
    )
    tab.shot("13-image-steps")

    # Compared, each run's images stand side by side at one step (the last it had by then).
    best = seeded.runs["best"]
    page = tab.open(f"/ws/{seeded.workspace}/compare?runs={best}&runs={run.id}")
    sync = page.locator("#compare-images .image-sync[data-key=samples]")
    assert sync.get_attribute("data-steps") == "[0, 1, 5, 10]"
    figures = sync.locator(".step-image")
    assert figures.evaluate_all("els => els.map(e => e.dataset.run)") == [best, run.id]
    _slide(sync, 1)  # step 1: best's second image, the painter's first
    assert figures.evaluate_all("els => els.map(e => e.dataset.step)") == ["1", "0"]
    _slide(sync, 3)  # step 10
    assert figures.evaluate_all("els => els.map(e => e.dataset.step)") == ["1", "10"]
    page.wait_for_function(
        "Array.from(document.querySelectorAll('#compare-images img'))"
        ".every(i => i.naturalWidth > 0)"
    )
    tab.shot("14-compare-images")


def test_a_logged_table_is_drawn_from_two_of_its_columns(tab: Page, seeded: Seeded) -> None:
    page = tab.open(f"/ws/{seeded.workspace}/runs/{seeded.runs['best']}/metrics")
    pr = page.locator(".table-plot[data-name=pr]")
    pr.locator(".plot-kind").select_option("scatter")
    pr.locator(".plot-x").select_option("precision")
    pr.locator(".plot-y").select_option("recall")
    page.wait_for_selector(".table-plot[data-name=pr][data-drawn='2']")
    data = pr.locator(".plot").evaluate("el => el._uplot.data")
    assert data == [[0.88, 0.91], [0.9, 0.83]]  # sorted by x
    confusion = page.locator(".table-plot[data-name=confusion]")
    confusion.locator(".plot-kind").select_option("bar")
    confusion.locator(".plot-x").select_option("label")
    confusion.locator(".plot-y").select_option("dog")
    page.wait_for_selector(".table-plot[data-name=confusion][data-drawn='2']")
    assert confusion.locator(".plot").evaluate("el => el._uplot.data") == [[0, 1], [2, 45]]
    ticks = confusion.locator(".plot").evaluate("el => el._uplot.axes[0]._values")
    assert "cat" in ticks and "dog" in ticks
    tab.shot("15-table-plot")
    confusion.locator(".plot-kind").select_option("")
    assert confusion.locator(".table-chart").is_hidden()


def test_logs_number_and_search_lines_and_tabs_count_what_they_hold(
    tab: Page, seeded: Seeded
) -> None:
    from cumulo import Workspace
    from cumulo.sdk.workspace import Experiment

    ws = Workspace.get(seeded.workspace, home=seeded.home)
    run = Experiment(ws, "digits").start_logging(display_name="chatty")
    text = "".join(f"epoch {e} loss {1 / e:.3f}\n" for e in range(1, 31)) + "done"
    run.upload_file("logs/train.log", io.BytesIO(text.encode()))
    run.complete()
    page = tab.open(f"/ws/{seeded.workspace}/runs/{run.id}/logs")
    page.wait_for_selector("#log[data-lines='31']")
    lines = page.locator("#log .ln")
    assert lines.evaluate_all("els => els.map(e => e.dataset.n)")[:3] == ["1", "2", "3"]
    assert lines.nth(1).inner_text() == "epoch 2 loss 0.500"  # the number is not in the text
    assert lines.nth(30).inner_text() == "done"
    page.fill("#log-search", "EPOCH 2")  # any case
    shown = page.locator("#log .ln:visible")
    assert shown.evaluate_all("els => els.map(e => e.dataset.n)") == ["2", *map(str, range(20, 30))]
    assert page.inner_text("#log-matches") == "11 of 31 lines"
    tab.shot("16-log-search")
    page.fill("#log-search", "")
    assert page.locator("#log .ln:visible").count() == 31
    assert _tab_counts(page) == {"logs": "1"}

    page = tab.open(f"/ws/{seeded.workspace}/runs/{seeded.runs['best']}")
    assert _tab_counts(page) == {"metrics": "4", "images": "2"}  # 2 series, 2 tables
    page = tab.open(f"/ws/{seeded.workspace}/runs/{seeded.runs['sweep']}")
    assert _tab_counts(page) == {"children": "3"}


def _tab_counts(page: Any) -> dict[str, str]:
    found = page.locator("#run-tabs a:has(.count)").evaluate_all(
        "els => els.map(e => [e.dataset.tab, e.querySelector('.count').textContent])"
    )
    return dict(found)


def test_code_opens_on_the_script_and_error_pages_keep_the_workspace(
    tab: Page, seeded: Seeded
) -> None:
    page = tab.open(f"/ws/{seeded.workspace}/runs/{seeded.runs['best']}/code")
    assert "print('training')" in page.inner_text("pre.text")  # no click needed

    page = tab.open(f"/ws/{seeded.workspace}/runs/{'0' * 32}")
    assert "Something is not right" in page.inner_text("h1")
    nav = page.locator("header.top nav a").all_inner_texts()
    assert "Experiments" in nav and "Models" in nav
    back = page.locator(".error-page a")
    assert back.get_attribute("href") == f"/ws/{seeded.workspace}/experiments"
    page = tab.open("/ws/no-such-workspace/experiments")
    assert page.locator("header.top nav a").all_inner_texts() == ["Home"]
    tab.errors.clear()  # the browser logs each 404 answer as a console error
