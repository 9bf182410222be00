"""The environment-build benchmark's report, from measurements given to it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import env_build


def test_the_report_states_the_goals_the_load_and_pips_indexes() -> None:
    ways = [way for way, _ in env_build.WAYS]
    m = {
        "uv-empty": [6.0, 13.0],
        "uv-pip-indexes": [8.0, 12.0],
        "uv-warm": [1.1, 1.3],
        "reuse": [0.0001, 0.0002],
        "pip-empty": [40.0, 80.0],
        "loads": {way: [6.5, 22.0] for way in ways},
        "ways": ways,
        "extra": "file:///srv/simple",
    }
    text = env_build.report(argparse.Namespace(repeat=2), m, ["python", "x"], time.time())
    assert (
        "| uv, new environment, warm uv cache | 1.20 s | 1.10 s – 1.30 s | 6.5 – 22.0 | 2 |" in text
    )
    assert "1.20 s with a warm uv cache (**met**), 9.50 s with an empty one (**not met**)" in text
    assert "reused in under 200 ms: 0.15 ms (**met**)" in text
    assert "same indexes: 6.0× faster; with its cache warm, 50.0× faster" in text
    assert "`file:///srv/simple`" in text and "2 cores" in text
