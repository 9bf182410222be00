"""The registry and endpoint pages in headless Chromium against a real server.

One endpoint with one replica (an entry-script model) serves the browser
tests of this module: the test form scores through it, its answers fill the
request charts. Each browser test leaves screenshots of the pages it checked
in test-artifacts/screenshots/. Who sees an endpoint's key is checked over
plain HTTP with auth on.
"""

from __future__ import annotations

import html
import io
import json
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from studio_kit import LiveServer, Page

from cumulo.core.settings import Settings

SCORE_PY = textwrap.dedent(
    """
    import json
    import os
    from pathlib import Path

    from cumulo import InvalidInput

    weights = None


    def init():
        global weights
        if os.environ.get("FAIL_INIT"):
            raise RuntimeError("cannot load the weights: " + os.environ["FAIL_INIT"])
        weights = json.loads((Path(os.environ["CUMULO_MODEL_DIR"]) / "weights.json").read_text())
        print("scaler loaded", weights["version"], flush=True)


    def run(raw_data):
        rows = json.loads(raw_data).get("data")
        if not isinstance(rows, list):
            raise InvalidInput("data must be a list of rows")
        return {"version": weights["version"], "result": [weights["scale"] * sum(r) for r in rows]}
    """
)


@dataclass
class Shop:
    server: LiveServer
    workspace: str
    run_id: str
    key: str
    code: Path


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """A workspace with a model registered from a run, deployed behind endpoint ``pricer``."""
    from cumulo import DeploymentConfig, Experiment, InferenceConfig, Model, Workspace
    from cumulo.core.entities import DatasetInput
    from cumulo.services.context import close_all, open_services

    root = tmp_path_factory.mktemp("models-studio")
    home = root / "home"
    ws = Workspace.create("shop", home=home)
    run = Experiment(ws, "pricing").start_logging(display_name="train-scaler")
    weights = {"version": "v1", "scale": 2.5}
    run.upload_file("outputs/model/weights.json", io.BytesIO(json.dumps(weights).encode()))
    run.complete()
    ws.flush()
    # What an MLflow client's log_inputs records for the run: the data it trained on.
    services = open_services(Settings.load(home=home))
    services.registry.log_inputs(
        ws.name, run.id, [DatasetInput(name="prices-2024", digest="9f86d081884c7d65")]
    )
    first = run.register_model(
        "scaler",
        model_path="outputs/model",
        tags={"team": "pricing"},
        properties={"rmse": "0.12"},
        model_framework="custom",
        datasets=[("training", "prices-2024")],
    )
    first.set_alias("champion")
    folder = root / "v2"
    folder.mkdir()
    (folder / "weights.json").write_text(json.dumps({"version": "v2", "scale": 3.0}))
    Model.register(ws, folder, "scaler", tags={"stage": "candidate"}, description="from a laptop")
    services.registry.set_model_tag(ws.name, "scaler", "owner", "pricing-team")
    code = root / "serve"
    code.mkdir()
    (code / "score.py").write_text(SCORE_PY)
    try:
        with LiveServer(Settings.load(home=home)) as server:
            remote = Workspace.connect(server.url, "shop")
            endpoint = Model.deploy(
                remote,
                "pricer",
                [Model(remote, "scaler", version=1)],
                InferenceConfig(
                    entry_script="score.py", source_directory=code, sample_input={"data": [[1, 2]]}
                ),
                DeploymentConfig(replicas=1, request_logging=1.0),
                timeout=120,
            )
            key = endpoint.get_keys()[0]
            yield Shop(server, "shop", run.id, key, code)
    finally:
        close_all()


@pytest.fixture
def tab(browser: Any, shop: Shop) -> Iterator[Page]:
    page = Page(browser, shop.server.url)
    page.page.on("response", lambda r: print("DBG", r.status, r.url) if r.status >= 400 else None)
    yield page
    page.context.close()
    assert page.errors == [], f"JavaScript errors on the page: {page.errors}"


@pytest.mark.slow
def test_models_list_model_page_lineage_and_run_link(tab: Page, shop: Shop) -> None:
    page = tab.open(f"/ws/{shop.workspace}/experiments")
    page.click("header.top nav >> text=Models")
    page.wait_for_url(re.compile(r"/ws/shop/models$"))
    row = page.locator("#models tr[data-model=scaler]")
    assert row.locator("td").nth(1).inner_text() == "v2"  # the latest version
    assert "@champion → v1" in row.inner_text()
    assert "owner=pricing-team" in row.inner_text()  # the model's tag
    assert "stage=candidate" in row.inner_text()  # and its latest version's
    assert row.locator("a.chip.served", has_text="pricer").count() == 1
    tab.shot("20-models")

    row.get_by_role("link", name="scaler").click()
    page.wait_for_url(re.compile(r"/ws/shop/models/scaler$"))
    v1 = page.locator("#versions tr[data-version='1']")
    assert "@champion" in v1.inner_text()
    assert "custom" in v1.inner_text()  # the framework given at registration
    assert v1.get_by_role("link", name="train-scaler").get_attribute("href") == (
        f"/ws/shop/runs/{shop.run_id}"
    )
    assert "pricing" in v1.inner_text()  # the experiment
    assert "pricer/blue · 100%" in v1.inner_text()
    v2 = page.locator("#versions tr[data-version='2']")
    assert "—" in v2.locator("td").nth(5).inner_text()  # uploaded: no source run
    flow = page.locator("#lineage .flow[data-version='1']")
    assert re.search(r"prices-2024.*train-scaler.*scaler:1.*pricer/blue", flow.inner_text(), re.S)
    tab.shot("21-model")

    flow.get_by_role("link", name="scaler:1").click()
    page.wait_for_url(re.compile(r"/ws/shop/models/scaler/versions/1$"))
    assert page.locator("#version-files a", has_text="weights.json").count() == 1
    assert "rmse" in page.inner_text("body")
    assert "Stage" not in page.inner_text("body")  # MLflow's "None" stage is no stage
    with page.expect_download() as info:
        page.locator("#version-files a", has_text="weights.json").click()
    assert json.loads(Path(info.value.path()).read_text())["scale"] == 2.5
    tab.shot("22-model-version")

    page.locator("#lineage").get_by_role("link", name="train-scaler").click()
    page.wait_for_url(re.compile(rf"/runs/{shop.run_id}$"))
    chip = page.locator("#registered-models a.model-version")
    assert chip.inner_text() == "scaler:1 @champion"


@pytest.mark.slow
def test_endpoint_page_test_form_charts_snippets_and_logs(tab: Page, shop: Shop) -> None:
    page = tab.open(f"/ws/{shop.workspace}/endpoints")
    row = page.locator("#endpoints-table tr[data-endpoint=pricer]")
    assert "Healthy" in row.inner_text()
    assert "scaler:1" in row.inner_text() and "blue 100%" in row.inner_text()
    tab.shot("23-endpoints")

    row.get_by_role("link", name="pricer").click()
    page.wait_for_url(re.compile(r"/ws/shop/endpoints/pricer$"))
    blue = page.locator("section.deployment[data-deployment=blue]")
    assert blue.get_attribute("data-state") == "Healthy"
    assert blue.locator("tr[data-replica='0']").get_attribute("data-state") == "ready"
    assert "1/1 replicas ready" in blue.inner_text()
    # Snippets carry the key for whoever may read it (auth is off here).
    assert f"Bearer {shop.key}" in page.inner_text("#snippet-curl")
    page.click(".snippet-tabs >> text=Python")
    assert "requests.post(" in page.inner_text("#snippet-python")
    assert page.locator("#snippet-python").is_visible()

    # The test form: the sample body goes through the server to the replica.
    assert json.loads(page.input_value("#test-body")) == {"data": [[1, 2]]}
    page.click("#test-send")
    page.wait_for_selector("#test-answer")
    answer = page.locator("#test-answer")
    assert answer.get_attribute("data-status") == "200"
    assert "answered by blue" in answer.inner_text()
    assert json.loads(page.inner_text("#test-answer pre")) == {"version": "v1", "result": [7.5]}

    # A bad body gets the model's message, with the status the endpoint answered.
    page.fill("#test-body", '{"data": 3}')
    page.click("#test-send")
    page.wait_for_selector("#test-answer[data-status='400']")
    assert "data must be a list of rows" in page.inner_text("#test-answer")
    # An exception in run() is a 500 with an error id; the replica keeps serving.
    page.fill("#test-body", '{"data": [[1, "x"]]}')
    page.click("#test-send")
    page.wait_for_selector("#test-answer[data-status='500']")
    assert "error id" in page.inner_text("#test-answer")
    # The model's own error, from the replica's log, not a bare 500.
    assert "TypeError: unsupported operand type" in page.inner_text("#model-error")

    # The three requests are in the charts (drawn from the stored per-minute metrics).
    page.wait_for_selector("#traffic-chart[data-drawn='3'] canvas", timeout=20_000)
    page.wait_for_selector("#latency-chart[data-drawn='1'] canvas")
    assert "3 requests, 1 error in" in page.inner_text("#metrics-total")
    # Every request is kept (request_logging=1.0): the newest first, with the answer.
    kept = page.locator("#requests-table tbody tr")
    for _ in range(40):  # the log is stored just after the counts: refresh until it is there
        page.click("#requests-refresh")
        page.wait_for_timeout(250)
        if kept.count() == 3:
            break
    assert kept.count() == 3
    assert [kept.nth(i).get_attribute("data-status") for i in range(3)] == ["500", "400", "200"]
    assert '"result":[7.5]' in kept.nth(2).inner_text()
    # Replica logs tail live.
    page.wait_for_function(
        "document.querySelector('#endpoint-log').textContent.includes('scaler loaded v1')",
        timeout=20_000,
    )
    tab.shot("24-endpoint", full_page=True)

    # The traffic split is checked by the service; its message comes back on the page.
    page.click("#traffic-edit summary")
    page.fill("input[name='traffic.blue']", "60")
    page.click("#traffic-edit button[type=submit]")
    page.wait_for_selector("#message")
    assert "must add up to 100, they add up to 60" in page.inner_text("#message")
    page.fill("input[name='traffic.blue']", "100")
    page.click("#traffic-edit button[type=submit]")
    page.wait_for_url(re.compile(r"/ws/shop/endpoints/pricer$"))
    assert page.locator("#message").count() == 0

    # The request charts take the theme's colours: dark grid lines on the dark theme.
    page.emulate_media(color_scheme="dark")
    page.reload()
    page.wait_for_selector("#latency-chart[data-drawn='1'] canvas")
    grid, line = page.evaluate(
        "() => { const u = document.querySelector('#latency-chart .plot')._uplot;"
        " return [u.axes[1].grid.stroke(u, 1),"
        " getComputedStyle(document.documentElement).getPropertyValue('--line').trim()]; }"
    )
    page.emulate_media(color_scheme="light")
    assert grid == line == "#30363d"


@pytest.mark.slow
def test_failed_deployment_shows_its_init_traceback(tab: Page, shop: Shop) -> None:
    from cumulo import DeploymentConfig, Endpoint, InferenceConfig, Model, Workspace

    remote = Workspace.connect(shop.server.url, shop.workspace)
    page = tab.open(f"/ws/{shop.workspace}/endpoints/pricer")
    Endpoint(remote, "pricer").add_deployment(
        "green",
        [Model(remote, "scaler", version=2)],
        InferenceConfig(entry_script="score.py", source_directory=shop.code),
        DeploymentConfig(environment_variables={"FAIL_INIT": "disk is gone"}),
        wait=False,
    )
    # The deployments part of the page refreshes itself until green has failed.
    green = page.locator("section.deployment[data-deployment=green][data-state=Failed]")
    green.wait_for(timeout=60_000)
    page.wait_for_selector("#endpoint-state:has-text('Failed')")  # the header follows along
    text = green.inner_text()
    assert "cannot load the weights: disk is gone" in text
    assert "in init" in text  # the failing frame of the traceback
    green.locator("summary", has_text="Full traceback").click()
    # The next refresh of the deployments (a new element) keeps the traceback open.
    page.eval_on_selector("#deployments", "el => el.setAttribute('data-seen', '1')")
    page.wait_for_selector("#deployments:not([data-seen])", state="attached", timeout=20_000)
    assert "Traceback (most recent call last)" in green.locator("pre.log").inner_text()
    blue = page.locator("section.deployment[data-deployment=blue]")
    assert blue.get_attribute("data-state") == "Healthy"
    tab.shot("25-endpoint-failed-deployment")


def test_endpoint_keys_only_reach_those_who_may_change_the_workspace(tmp_path: Path) -> None:
    import httpx

    with LiveServer(Settings.load(home=tmp_path / "home", auth="token")) as server:
        app = server.server.config.app
        api = app.state.services.deployments
        app.state.services.tracking.create_workspace("shop")
        api.create_endpoint("shop", "pricer")
        _, reader = app.state.auth.create_token("shop", "reader")
        _, contributor = app.state.auth.create_token("shop", "contributor")
        with httpx.Client(base_url=server.url) as client:
            _check_keys(client, api.get_keys("shop", "pricer")["primary"], reader, contributor)


def _check_keys(client: Any, key: str, reader: str, contributor: str) -> None:

    page = client.get("/ws/shop/endpoints/pricer", headers={"authorization": f"Bearer {reader}"})
    assert page.status_code == 200
    assert key not in page.text and "Bearer <endpoint-key>" in html.unescape(page.text)
    # Nor can a reader have the studio score with the key on their behalf.
    tried = client.post(
        "/ws/shop/endpoints/pricer/test",
        data={"body": "{}"},
        headers={"authorization": f"Bearer {reader}", "hx-request": "true"},
    )
    assert tried.status_code == 200 and "a contributor token is needed" in tried.text
    assert key not in tried.text

    page = client.get(
        "/ws/shop/endpoints/pricer", headers={"authorization": f"Bearer {contributor}"}
    )
    assert f"Bearer {key}" in page.text
    assert 'token="<your-cumulo-token>"' in html.unescape(page.text)  # the SDK, auth on
    anonymous = client.get("/ws/shop/endpoints/pricer", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    data = client.get("/studio-data/ws/shop/endpoints/pricer/logs")
    assert data.status_code == 401


def test_snippets_are_valid_python_and_samples_follow_the_signature() -> None:
    from cumulo.core.deployments import DeploymentInfo
    from cumulo.server.studio.endpoints import sample_body, snippets

    columns = [{"type": "double", "name": "petal length"}, {"type": "boolean", "name": "wild"}]
    iris = DeploymentInfo(
        endpoint="iris",
        name="blue",
        kind="mlflow",
        models=[{"name": "iris", "version": 1}],
        generation=1,
        state="Healthy",
        created_at=0,
        updated_at=0,
        spec={"signature": {"inputs": json.dumps(columns)}},
    )
    body = sample_body(iris)
    assert json.loads(body) == {
        "dataframe_split": {"columns": ["petal length", "wild"], "data": [[0.0, False]]}
    }
    code = snippets("http://h:1", "ws", "iris", "key", "k3y", body, server_auth=False)
    compile(code["python"], "python-snippet", "exec")  # JSON false is Python False
    compile(code["sdk"], "sdk-snippet", "exec")
    assert "'False'" not in code["python"] and "False" in code["python"]
    assert "-H 'Authorization: Bearer k3y'" in code["curl"]
    assert code["curl"].startswith("curl -X POST 'http://h:1/endpoints/ws/iris/score'")
    open_one = snippets("http://h:1", "ws", "iris", "none", None, '{"a": "it\'s"}', False)
    assert "Authorization" not in open_one["curl"] + open_one["python"]
    assert "-d '{\"a\": \"it'\\''s\"}'" in open_one["curl"]  # a quote inside the shell body


def test_the_test_form_starts_from_the_models_input_example_or_tensor_shape() -> None:
    from cumulo.core.deployments import DeploymentInfo
    from cumulo.server.studio.endpoints import sample_body

    def deployment(spec: dict[str, Any]) -> DeploymentInfo:
        return DeploymentInfo(
            endpoint="e",
            name="blue",
            kind="mlflow",
            models=[{"name": "m", "version": 1}],
            generation=1,
            state="Healthy",
            created_at=0,
            updated_at=0,
            spec=spec,
        )

    untyped = deployment({"signature": None})
    assert json.loads(sample_body(untyped)) == {}  # nothing known: an empty object to fill
    logged = {"columns": ["a", "b"], "data": [[1.5, 2.5]]}
    assert json.loads(sample_body(untyped, logged)) == {"dataframe_split": logged}
    records = [{"a": 1, "b": 2}]
    assert json.loads(sample_body(untyped, records)) == {"dataframe_records": records}
    served = {"inputs": [[0.1, 0.2]]}
    assert json.loads(sample_body(untyped, served)) == served
    tensor = [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}}]
    images = deployment({"signature": {"inputs": json.dumps(tensor)}})
    assert json.loads(sample_body(images)) == {"inputs": [[0.0, 0.0, 0.0]]}
