"""The example notebooks run top to bottom in a real kernel, in a fresh home and folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).parents[2] / "examples" / "notebooks"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs(name: str, tmp_path: Path) -> None:
    import nbclient
    import nbformat

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = json.dumps([cell.get("outputs", []) for cell in nb.cells])
    assert "Traceback" not in outputs
    if name == "quickstart.ipynb":
        assert "'Completed'" in outputs and "lr=0.1" in outputs and "epoch 4" in outputs
