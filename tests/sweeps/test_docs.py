"""The examples of docs/sweeps.md run as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cumulo.cli.main import app

pytestmark = pytest.mark.slow  # each runs a whole sweep of job processes

DOC = Path(__file__).resolve().parents[2] / "docs" / "sweeps.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)


def test_the_python_example_runs(tmp_path: Path) -> None:
    train, sweep = _blocks("python")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(train)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(sweep, "sweep.py", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("best: {'")
    assert len(lines) == 4  # the best, then the top three


def test_the_sweep_file_runs(tmp_path: Path) -> None:
    train = _blocks("python")[0]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(train)
    (tmp_path / "sweep.yml").write_text(_blocks("yaml")[0])
    cli = CliRunner()
    assert cli.invoke(app, ["workspace", "create", "demo"]).exit_code == 0
    result = cli.invoke(app, ["sweep", "submit", "-f", "sweep.yml", "-w", "demo"])
    assert result.exit_code == 0, result.output
    assert "Completed, 6 of 6 trials ended" in " ".join(result.output.split())
