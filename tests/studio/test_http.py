"""The studio over plain HTTP: error pages, data errors, file headers, token login."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from studio_kit import LiveServer, png

from cumulo.core.settings import Settings


def _seed(home: Path) -> tuple[str, str]:
    from cumulo import Workspace
    from cumulo.sdk.workspace import Experiment

    ws = Workspace.create("vision", home=home)
    Workspace.create("other", home=home)
    run = Experiment(ws, "digits").start_logging(display_name="one")
    run.upload_file("outputs/table.csv", io.BytesIO(b"a,b\n1,2\n"))
    run.upload_file("outputs/page.html", io.BytesIO(b"<script>alert(1)</script>"))
    run.upload_file("outputs/pic.png", io.BytesIO(png(4, 4, (0, 0, 0))))
    run.log("loss", 0.5)
    run.complete()
    return ws.name, run.id


@pytest.fixture
def open_studio(tmp_path: Path) -> Iterator[tuple[httpx.Client, str]]:
    home = tmp_path / "home"
    _, run_id = _seed(home)
    with (
        LiveServer(Settings.load(home=home)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        yield client, run_id


def test_errors_are_pages_and_data_errors_are_json(open_studio: tuple[httpx.Client, str]) -> None:
    client, run_id = open_studio
    page = client.get("/ws/nowhere/experiments")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Workspace &#39;nowhere&#39; does not exist" in page.text
    data = client.get(
        f"/studio-data/ws/vision/runs/{run_id}/series", params={"key": "loss", "axis": "epoch"}
    )
    assert data.status_code == 400
    assert data.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    ok = client.get(f"/studio-data/ws/vision/runs/{run_id}/series", params={"key": "loss"})
    assert ok.json()["y"] == [0.5]
    compare = client.get("/ws/vision/compare")
    assert compare.status_code == 400 and "Pick 1 to 20 runs" in compare.text


def test_files_never_run_in_the_studio_origin(open_studio: tuple[httpx.Client, str]) -> None:
    client, run_id = open_studio
    html = client.get(f"/ws/vision/runs/{run_id}/file/outputs/page.html")
    assert html.status_code == 200
    assert html.headers["content-type"] == "application/octet-stream"
    assert html.headers["content-disposition"].startswith("attachment")
    assert html.headers["content-security-policy"].startswith("sandbox")
    image = client.get(f"/ws/vision/runs/{run_id}/file/outputs/pic.png")
    assert image.headers["content-type"] == "image/png"
    assert "content-disposition" not in image.headers
    download = client.get(f"/ws/vision/runs/{run_id}/file/outputs/table.csv?download=true")
    assert download.content == b"a,b\n1,2\n"
    escape = client.get(f"/ws/vision/runs/{run_id}/file/outputs/..%2F..%2F..%2Fcumulo.db")
    assert escape.status_code in (400, 404)
    preview = client.get(f"/ws/vision/runs/{run_id}/outputs?path=outputs&file=outputs/page.html")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in preview.text


@pytest.fixture
def token_studio(tmp_path: Path) -> Iterator[tuple[httpx.Client, Any]]:
    home = tmp_path / "home"
    _seed(home)
    with (
        LiveServer(Settings.load(home=home, auth="token")) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        yield client, server.server.config.app.state.auth


def test_token_login_sets_a_cookie_that_opens_the_workspace(
    token_studio: tuple[httpx.Client, Any],
) -> None:
    client, auth = token_studio
    home = client.get("/")
    assert home.status_code == 303 and home.headers["location"] == "/login?next=/"
    deep = client.get("/ws/vision/experiments")
    assert deep.headers["location"] == "/login?next=/ws/vision/experiments"
    assert "Sign out" not in client.get("/login").text  # nobody to sign out yet
    bad = client.post("/login", data={"token": "nope", "next": "/"})
    assert bad.status_code == 401 and "Unknown token" in bad.text
    assert "Sign out" not in bad.text

    _, reader = auth.create_token("vision", "reader")
    ok = client.post("/login", data={"token": reader, "next": "/ws/vision/experiments"})
    assert ok.status_code == 303 and ok.headers["location"] == "/ws/vision/experiments"
    assert client.cookies.get("cumulo_token") == reader
    signed_in = client.get("/ws/vision/experiments")
    assert signed_in.status_code == 200 and "Sign out" in signed_in.text
    listed = client.get("/").text
    assert "/ws/vision/experiments" in listed and "/ws/other/experiments" not in listed
    assert client.get("/ws/other/experiments").status_code == 403
    denied = client.post("/ws/vision/experiments", data={"name": "new"})
    assert denied.status_code == 403  # a reader cannot create experiments

    escape = client.post("/login", data={"token": reader, "next": "//evil.example/"})
    assert escape.headers["location"] == "/"
    client.post("/logout")
    assert client.get("/ws/vision/experiments").status_code == 303


def test_model_lists_page_newer_and_older(tmp_path: Path) -> None:
    from cumulo import Model, Workspace

    home = tmp_path / "home"
    ws = Workspace.create("shelf", home=home)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "w.txt").write_text("1")
    for i in range(52):  # one model more than a page holds; m00 gets a second version
        Model.register(ws, folder, f"m{i:02d}" if i < 51 else "m00")
    with LiveServer(Settings.load(home=home)) as server, httpx.Client(base_url=server.url) as c:
        first = c.get("/ws/shelf/models", params={"q": "m"}).text
        assert "Older →" in first and "← Newer" not in first
        assert "page=2" in first and "q=m" in first  # the next page keeps the search
        second = c.get("/ws/shelf/models", params={"q": "m", "page": 2}).text
        assert "← Newer" in second and "Older →" not in second
        versions = c.get("/ws/shelf/models/m00").text
        assert "page 1" not in versions  # two versions fit on one page: no pager


def test_the_asset_version_changes_with_any_static_file_new_ones_included(tmp_path: Path) -> None:
    from cumulo.server.studio.web import asset_version

    (tmp_path / "studio.js").write_text("one")
    first = asset_version(tmp_path)
    assert asset_version(tmp_path) == first
    (tmp_path / "studio.js").write_text("two")
    edited = asset_version(tmp_path)
    (tmp_path / "later.js").write_text("")
    added = asset_version(tmp_path)
    assert len({first, edited, added}) == 3
