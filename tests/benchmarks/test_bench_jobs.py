"""The jobs benchmark on a tiny count (local and pool, no Ray), and its report.

These check that real jobs run through the benchmark end to end and that the
section renders with its rows, counts and verdicts; never how fast anything is.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import job_latency as jobs  # noqa: E402

ROW = re.compile(
    r"^\| (?P<target>[^|]+) \| (?P<how>[^|]+) \| (?P<run>[\d.]+) s / (?P<run90>[\d.]+) s \| "
    r"(?P<done>[\d.]+) s / (?P<done90>[\d.]+) s \| (?P<submit>[\d.]+) s \| (?P<cold>[^|]*) \| "
    r"(?P<timed>[^|]+) \|$",
    re.MULTILINE,
)


def _args(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "submissions": 2,
        "targets": "local,pool",
        "gap": 0.2,
        "keep": False,
    }
    values.update(overrides)
    return argparse.Namespace(**values)


@pytest.mark.slow
def test_local_and_pool_submissions_run_and_render(tmp_path: Path) -> None:
    section = jobs.run(_args(), ["python", "benchmarks/run.py", "jobs"])

    assert section.startswith("## Jobs:")
    assert "- Command: `python benchmarks/run.py jobs`" in section
    assert "2 timed submissions per row after one warm-up" in section
    assert "failed" not in section.lower()
    rows = [m.groupdict() for m in ROW.finditer(section)]
    assert [(r["target"], r["how"]) for r in rows] == [
        ("`local`", "Cumulo `exp.submit`, 0.2 s apart"),
        ("`local`", "Cumulo `exp.submit`, back to back"),
        ("`LocalPool` (1 node)", "Cumulo `exp.submit`, 0.2 s apart"),
        ("`LocalPool` (1 node)", "Cumulo `exp.submit`, back to back"),
    ]
    for r in rows:
        assert r["timed"] == "2"
        # Every run reached Running before it completed, and the p90 is not below the median.
        assert 0 < float(r["run"]) <= float(r["done"])
        assert float(r["run"]) <= float(r["run90"]) and float(r["done"]) <= float(r["done90"])
    assert re.search(r"/ [\d.]+ s", rows[0]["cold"]), "the warm-up is shown apart"
    assert re.search(
        r"^- Target: under 0\.5 s from submit to `Running` on `local`: "
        r"[\d.]+ s spaced — \*\*(met|not met)\*\*; [\d.]+ s back to back — \*\*(met|not met)\*\*$",
        section,
        re.MULTILINE,
    )
    assert "Rival: Ray" not in section and "Ray head" not in section  # no Ray was asked for

    doc = tmp_path / "benchmarks.md"
    harness.write_section("jobs", section, doc)
    text = doc.read_text()
    assert text.count("<!-- bench:jobs -->") == 1 and section.strip() in text


def _row(key: str, running: list[float], completed: list[float], **extra: object) -> dict:
    return {
        "key": key,
        "running": running,
        "completed": completed,
        "submit": [0.01] * len(running),
        "failures": [],
        **extra,
    }


def test_the_report_compares_with_ray_and_shows_failures() -> None:
    result = {
        "submissions": 3,
        "gap_s": 1.0,
        "targets": ["local", "pool", "ray"],
        "ray_version": "2.60.0",
        "rows": [
            _row("local-spaced", [0.1, 0.2, 0.3], [0.2, 0.3, 0.4], cold={"running": 1.0}),
            _row("local-back", [0.6, 0.7, 0.8], [0.7, 0.8, 0.9]),
            {"key": "pool", "error": "Unavailable: no node started"},
            _row("ray-cumulo", [2.0, 2.0, 2.0], [2.5, 2.5, 2.5], cold={"failure": "Failed"}),
            _row("ray-cli", [4.0, 4.0, 4.0], [5.0, 5.0, 5.0]),
            _row("ray-sdk", [1.0, 1.0], [1.2, 1.2], failures=["Ray says FAILED: boom"]),
        ],
    }
    section = jobs.render(result, ["python", "benchmarks/run.py", "jobs"], 0.0)
    assert "| `local` | Cumulo `exp.submit`, 1 s apart | 0.20 s / 0.30 s |" in section
    assert "0.20 s spaced — **met**; 0.70 s back to back — **not met**" in section
    assert "| `LocalPool` (1 node) | Cumulo `exp.submit` | failed: Unavailable" in section
    assert "failed: Failed" in section  # the Ray warm-up's failure
    assert "| 2 (1 failed) |" in section
    assert "Failed submissions: Ray says FAILED: boom" in section
    assert "Ray 2.60.0 on the head Cumulo manages" in section
    assert (
        "Cumulo vs `ray job submit`: to `Running` 2.0× faster, to `Completed` 2.0× faster; "
        "vs `submit_job`: 2.0× slower to `Running`" in section
    )


def test_percentiles_and_targets() -> None:
    values = [float(v) for v in range(1, 21)]
    assert jobs.p90(values) == 18.0
    assert jobs.p90([3.0]) == 3.0
    assert jobs.median(values) == 10.5
    assert jobs.p90([]) is None
    with pytest.raises(harness.BenchError, match="unknown target gpu"):
        jobs._targets("local,gpu")


def test_run_py_runs_every_benchmark_by_default() -> None:
    import run

    assert list(run.BENCHMARKS) == [
        "store", "server", "tracking", "startup", "studio", "serving", "jobs", "failover",
        "datasets", "sysmetrics", "sweeps", "envs",
    ]  # fmt: skip
    args = run.parser().parse_args([])
    assert (args.submissions, args.targets, args.gap) == (20, "local,pool,ray", 1.0)
