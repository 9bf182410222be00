"""The code of the migration guides runs as written (against a server the test starts)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parents[2] / "docs"


def _python(name: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (DOCS / name).read_text(), re.S | re.M)


def _run(code: str, name: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, name, "exec"), {})
    return out.getvalue()


def test_from_azureml_runs() -> None:
    (block,) = _python("from-azureml.md")
    out = _run(block, "from-azureml.md")
    assert "cpu-cluster (pool) is ready" in out
    assert "['cpu-cluster', 'local'] {} {} {}" in out
    assert "Run.log_confusion_matrix is a name of the cloud service's SDK" in out


@pytest.mark.slow
def test_from_mlflow_runs(cumulo_server_url: str) -> None:
    (block,) = _python("from-mlflow.md")
    out = _run(block.replace("http://127.0.0.1:5000", cumulo_server_url), "from-mlflow.md")
    assert out.splitlines()[-1] == "{'lr': '0.1'} [1.0, 0.5, 0.3333333333333333]"
