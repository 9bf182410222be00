"""Published pipelines over a server with token checks: run by id over REST, endpoints' defaults."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.jobs.conftest import serve_workspace

from cumulo import (
    Pipeline,
    PipelineData,
    PipelineEndpoint,
    PipelineParameter,
    PipelineRun,
    PublishedPipeline,
    PythonScriptStep,
)

pytestmark = pytest.mark.slow  # a server and its jobs

WRITE = """\
import argparse, pathlib
p = argparse.ArgumentParser()
p.add_argument("--word")
p.add_argument("--out")
a = p.parse_args()
pathlib.Path(a.out, "word.txt").write_text(a.word)
"""
READ = """\
import argparse, pathlib
p = argparse.ArgumentParser()
p.add_argument("--inp")
a = p.parse_args()
print("got", pathlib.Path(a.inp, "word.txt").read_text())
"""


def test_a_published_pipeline_runs_over_rest_with_a_token(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "write.py").write_text(WRITE)
    (src / "read.py").write_text(READ)
    with serve_workspace(tmp_path / "server-home", auth="token") as (ws, _services):
        word = PipelineData("word")
        steps = [
            PythonScriptStep(
                "write",
                "write.py",
                src,
                ["--word", PipelineParameter("word", "hello"), "--out", word],
                outputs=[word],
            ),
            PythonScriptStep("read", "read.py", src, ["--inp", word]),
        ]
        published = Pipeline(ws, steps).publish("greet", description="writes and reads a word")
        assert published.version == "1"
        assert published.endpoint == (
            f"{ws.url}/api/v1/workspaces/{ws.name}/pipelines/{published.id}/runs"
        )
        body = {"experiment_name": "rest", "parameters": {"word": "bonjour"}}
        assert httpx.post(published.endpoint, json=body).status_code == 401
        token = ws._token
        answer = httpx.post(
            published.endpoint, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 201, answer.text
        run = PipelineRun.get(ws, answer.json()["id"])
        assert run.wait_for_completion(show_output=False, timeout=180)["status"] == "Completed"
        assert "got bonjour" in run.find_step_run("read").get_logs()

        # A second version becomes the endpoint's default only when asked.
        steps[0].arguments[1] = PipelineParameter("word", "salut")
        second = Pipeline(ws, steps).publish("greet")
        endpoint = PipelineEndpoint.get(ws, "greet")
        assert endpoint.default_version == "1"
        endpoint.set_default(second)
        assert endpoint.default_version == "2"
        assert [p.version for p in PublishedPipeline.list(ws)] == ["1", "2"]
        run = endpoint.submit("rest")
        assert run.wait_for_completion(show_output=False, timeout=180)["status"] == "Completed"
        assert "got salut" in run.find_step_run("read").get_logs()
        assert run.get_tags()["cumulo.pipeline.published"] == second.id
