"""The benchmark harness: figures-file sections, and both store sides on tiny inputs.

These check that the benchmark runs and that both stores return the expected
results; they never check how fast anything is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import store  # noqa: E402


def test_a_section_replaces_only_itself() -> None:
    text = harness.INTRO
    text = harness.replace_section(text, "store", "first store figures")
    text = harness.replace_section(text, "server", "server figures")
    text = harness.replace_section(text, "store", "second store figures")
    assert text.startswith("# Benchmarks")
    assert "first store figures" not in text
    assert text.count("<!-- bench:store -->") == 1
    assert text.index("second store figures") < text.index("server figures")
    assert "server figures" in text


def test_write_section_creates_the_file_with_its_intro(tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "benchmarks.md"
    harness.write_section("store", "figures", doc)
    harness.write_section("store", "new figures", doc)
    text = doc.read_text()
    assert "make bench" in text
    assert "new figures" in text and "\nfigures" not in text


def test_formatting() -> None:
    assert harness.ratio(386.2) == "386×"
    assert harness.ratio(16.4) == "16×"
    assert harness.ratio(2.94) == "2.9×"
    assert harness.duration(2.504) == "2.50 s"
    assert harness.duration(0.0123) == "12 ms"
    assert harness.duration(0.0043) == "4.3 ms"
    assert harness.verdict(5.0, 5.0) == "**met**"
    assert harness.verdict(4.9, 5.0) == "**not met**"


def _side(python: str, script: str, workdir: Path, *extra: str) -> dict[str, Any]:
    args = ["--runs", "60", "--points", "2500", "--repeat", "1", *extra]
    return harness.run_side(Path(python), script, workdir, args, timeout=240)


@pytest.mark.slow
def test_both_store_sides_agree_and_render(tmp_path: Path) -> None:
    cache = tmp_path / "seed-cache"
    cumulo = _side(sys.executable, "store_cumulo.py", tmp_path / "c1", "--seed-cache", str(cache))
    assert cumulo["seed"]["from_cache"] is False
    assert cumulo["search"]["agrees"] and cumulo["search"]["returned"] > 0
    assert cumulo["history"]["complete"] and cumulo["history"]["points"] == 2500
    assert cumulo["per_call"]["points"] == cumulo["batch"]["points"] == 2500

    # A second run starts from the seeded copy and finds the same runs.
    again = _side(sys.executable, "store_cumulo.py", tmp_path / "c2", "--seed-cache", str(cache))
    assert again["seed"]["from_cache"] is True
    assert again["search"]["agrees"]

    # The MLflow side, here with the test environment's MLflow (the benchmark uses its own).
    mlflow = _side(sys.executable, "store_mlflow.py", tmp_path / "m", "--calls", "20")
    assert mlflow["search"]["agrees"] and mlflow["history"]["complete"]
    assert mlflow["per_call"]["points"] == 20

    section = store.render(cumulo, mlflow, ["python", "benchmarks/run.py", "store"], 0.0)
    assert "| per-call logging, points/s |" in section
    assert f"MLflow {mlflow['version']}" in section
    assert "wrong result" not in section


def test_run_py_rejects_an_unknown_benchmark() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "nope"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "unknown benchmark nope" in proc.stderr
