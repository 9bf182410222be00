"""The data pages in headless Chromium against a real server: datasets, a version's
profile, preview, consuming runs and lineage, drift between versions, datastores."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from studio_kit import LiveServer, Page

from cumulo.core.settings import Settings

pytestmark = pytest.mark.slow


@dataclass
class Data:
    server: LiveServer
    workspace: str
    run_id: str


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Data]:
    from cumulo import Dataset, Datastore, Experiment, Workspace

    home = tmp_path_factory.mktemp("data-home")
    files = tmp_path_factory.mktemp("data-files")
    ws = Workspace.create("data", home=home)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"size": rng.normal(10, 2, 500), "kind": rng.choice(["a", "b"], 500)})
    v1 = Dataset.Tabular.from_pandas_dataframe(frame).register(ws, "sales", description="Q1")
    frame["size"] = frame["size"] + 6
    Dataset.Tabular.from_pandas_dataframe(frame).register(ws, "sales")
    (files / "landing" / "2026").mkdir(parents=True)
    (files / "landing" / "2026" / "jan.csv").write_text("a,b\n1,2\n")
    Datastore.register_local(ws, "landing", files / "landing")
    with Experiment(ws, "fit").start_logging(display_name="reader") as run:
        ws.transport.datasets.record_inputs(
            ws.name,
            run.id,
            [{"name": "train", "dataset": "sales", "version": 1, "mode": "download"}],
        )
        (files / "model.txt").write_text("w")
        run.upload_file("outputs/model.txt", files / "model.txt")
    run.register_model("sales-model", "outputs/model.txt")
    assert v1.get_runs()[0].id == run.id
    with LiveServer(Settings.load(home=home)) as server:
        yield Data(server, ws.name, run.id)


@pytest.fixture
def page(browser: object, data: Data) -> Iterator[Page]:
    tab = Page(browser, data.server.url)
    yield tab
    tab.context.close()
    assert tab.errors == [], f"JavaScript errors on the page: {tab.errors}"


def test_datasets_versions_profile_preview_and_lineage(page: Page, data: Data) -> None:
    p = page.open(f"/ws/{data.workspace}/experiments")
    p.get_by_role("link", name="Data").click()
    p.wait_for_url(re.compile(r"/datasets$"))
    row = p.locator("#datasets tr[data-dataset=sales]")
    assert "v2" in row.inner_text() and "500" in row.inner_text()
    row.get_by_role("link", name="sales").click()
    p.wait_for_url(re.compile(r"/datasets/sales$"))
    assert p.locator("#versions tbody tr").count() == 2
    p.locator("#versions tr[data-version='1'] a").first.click()
    p.wait_for_url(re.compile(r"/versions/1$"))
    size = p.locator("#profile tr[data-column=size]")
    assert "500" in size.inner_text() and "float" in size.inner_text()
    assert size.locator(".histogram span").count() == 20
    assert p.locator("#preview tbody tr").count() == 20
    assert "reader" in p.inner_text("#consumers")
    lineage = p.inner_text("#lineage")
    assert "reader" in lineage and "sales-model:1" in lineage
    page.shot("data-01-version")
    p.locator("#lineage a", has_text="sales-model:1").click()
    p.wait_for_url(re.compile(r"/models/sales-model/versions/1$"))
    p.locator("#lineage a", has_text="sales:1").click()  # and back to the data
    p.wait_for_url(re.compile(r"/datasets/sales/versions/1$"))


def test_drift_between_two_versions(page: Page, data: Data) -> None:
    p = page.open(f"/ws/{data.workspace}/datasets/sales")
    p.click("#compare-form button")
    p.wait_for_url(re.compile(r"/compare\?"))
    assert p.inner_text("#verdict") == "drift"
    assert "yes" in p.locator("#drift tr[data-column=size]").inner_text()
    assert "no" in p.locator("#drift tr[data-column=kind]").inner_text()
    page.shot("data-02-drift")


def test_datastore_browser(page: Page, data: Data) -> None:
    p = page.open(f"/ws/{data.workspace}/datastores")
    assert p.locator("#datastores tbody tr").count() == 2
    p.get_by_role("link", name="landing").click()
    p.get_by_role("link", name="2026/").click()
    p.wait_for_url(re.compile(r"path=2026"))
    assert "jan.csv" in p.inner_text("#entries")
    page.shot("data-03-datastore")
