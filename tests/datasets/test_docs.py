"""The examples of docs/datasets.md that need no server or bucket run as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

DOC = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_register_read_back_and_drift_run_as_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "images" / "a.png").write_bytes(b"\x89PNG fake")
    frame = pd.DataFrame({"age": rng.integers(18, 90, 200), "spend": rng.normal(50, 10, 200)})
    frame.to_csv(tmp_path / "data" / "train.csv", index=False)
    scope: dict[str, object] = {"df": frame}
    blocks = _blocks()
    out = io.StringIO()
    with contextlib.chdir(tmp_path), contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "register.py", "exec"), scope)
        exec(compile(blocks[1], "read.py", "exec"), scope)
        assert (tmp_path / "local" / "dir" / "train.csv").is_file()
        frame.assign(spend=frame["spend"] * 2).to_csv(tmp_path / "data" / "train.csv", index=False)
        from cumulo import Dataset

        Dataset.Tabular.from_delimited_files("data/train.csv").register(scope["ws"], "train")
        exec(compile(blocks[6], "drift.py", "exec"), scope)
    report = scope["report"]
    assert isinstance(report, dict) and report["drift"] is True
    assert "spend" in out.getvalue()
