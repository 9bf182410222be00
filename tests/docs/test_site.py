"""The documentation site builds with MkDocs in strict mode (a broken link or anchor
fails it), writes its pages and the REST reference made from the server's code, and
its pages load nothing from another site."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PAGES = [
    "index.html",
    "getting-started.html",
    "concepts.html",
    "how-to/index.html",
    "how-to/tracking.html",
    "how-to/models.html",
    "settings.html",
    "rest-api.html",
    "operations.html",
    "backup.html",
    "scale-out.html",
    "security.html",
    "from-azureml.html",
    "from-mlflow.html",
    "mlflow-compatibility.html",
    "benchmarks.html",
]
# A script, style sheet, image or frame fetched from another site.
REMOTE = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return out


@pytest.mark.slow
def test_the_site_builds_strict_with_its_pages(site: Path) -> None:
    missing = [page for page in PAGES if not (site / page).is_file()]
    assert not missing
    assert "five minutes" in (site / "getting-started.html").read_text()


@pytest.mark.slow
def test_the_rest_reference_lists_every_operation_of_the_server(site: Path) -> None:
    spec = json.loads((site / "openapi.json").read_text())
    assert spec["info"]["title"] == "Cumulo"
    page = (site / "rest-api.html").read_text()
    operations = [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(operations) > 50
    rows = re.findall(r"<tr>\s*<td><code>(\w+)</code></td>\s*<td><code>([^<]+)</code></td>", page)
    assert sorted(rows) == sorted(operations)
    assert "/api/v1/workspaces/{workspace}/runs/{run_id}" in spec["paths"]
    assert f"{len(operations)} operations" in page


@pytest.mark.slow
def test_no_page_loads_anything_from_another_site(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= len(PAGES)
    assert not [str(p.relative_to(site)) for p in pages if REMOTE.search(p.read_text())]
