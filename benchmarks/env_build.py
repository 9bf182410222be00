"""What building a job's environment costs: uv (cold, warm cache, reuse) against pip.

    python benchmarks/env_build.py              # or: python benchmarks/run.py envs
    python benchmarks/env_build.py --repeat 5

The demo's requirements (scikit-learn, as the README's jobs section has it, and
pandas) are built into a new environment through ``ensure_environment``, the
code every job and endpoint builds with, ``--repeat`` times each way, the ways
interleaved:

- uv, a new environment with an empty uv cache (every wheel fetched);
- the same, with the extra indexes pip's config files name given to the build as
  ``PIP_EXTRA_INDEX_URL`` (which it hands to uv), when they name some: the wheels
  pip gets there;
- uv, a new environment with a warm uv cache (the cache beside the environments,
  as a machine has it once it built any environment of these packages);
- the built environment reused (what every later run of the spec pays);
- pip, a new environment with an empty pip cache, set up as this machine's pip is.

The 1-minute load average is read before each build: the machine is shared.
The section in docs/benchmarks.md is rewritten.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from cumulo.compute.environments import UV_CACHE, ensure_environment, uv_binary
from cumulo.core.jobs import EnvironmentSpec

REQUIREMENTS = ("scikit-learn==1.9.1", "pandas==3.1.1")
WAYS = (
    ("uv-empty", "uv, new environment, empty uv cache"),
    ("uv-pip-indexes", "uv, new environment, empty uv cache, pip's configured extra indexes"),
    ("uv-warm", "uv, new environment, warm uv cache"),
    ("reuse", "the built environment reused"),
    ("pip-empty", "pip, new environment, empty pip cache"),
)
COLD_GOAL_S = 3.0
REUSE_GOAL_S = 0.2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeat", type=int, default=3, help="builds of each way")
    p.add_argument("--no-pip", action="store_true", help="leave pip's builds out")
    return p


@contextmanager
def _environ(**values: str | None) -> Iterator[None]:
    before = dict(os.environ)
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


def _build(cache: Path, installer: str, **environ: str | None) -> tuple[float, float, str]:
    """(seconds, load average before, the environment's python) of one build or reuse."""
    spec = EnvironmentSpec.parse({"pip_requirements": list(REQUIREMENTS)})
    lines: list[str] = []
    load = os.getloadavg()[0]
    with _environ(UV_CACHE_DIR=None, **environ):
        started = time.perf_counter()
        try:
            python = ensure_environment(
                spec, cache, lines.append, label="demo", installer=installer
            )
        except Exception as exc:
            raise harness.BenchError(f"{installer} build failed:\n" + "\n".join(lines)) from exc
        seconds = time.perf_counter() - started
    return seconds, load, python


def _check(python: str) -> None:
    """The built environment has the packages, in the versions asked."""
    code = "import sklearn, pandas; print(sklearn.__version__, pandas.__version__)"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    want = " ".join(r.split("==")[1] for r in REQUIREMENTS)
    if out.stdout.strip() != want:
        raise harness.BenchError(f"the built environment has {out.stdout.strip()}, not {want}")


def _pip_extra_indexes() -> str | None:
    """The extra index URLs pip's config files give it here, if any."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        name, _, value = line.partition("=")
        if name.endswith(".extra-index-url") and value.strip("'\""):
            return value.strip("'\"")
    return None


def _forget(python: str) -> None:
    """Remove a built environment (its folder and ready mark), keep its cache folder."""
    shutil.rmtree(Path(python).parents[1])


def measure(opts: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {way: [] for way, _ in WAYS}
    out["loads"] = {way: [] for way, _ in WAYS}
    extra = _pip_extra_indexes()
    ways = [
        w
        for w, _ in WAYS
        if not (opts.no_pip and w.startswith("pip")) and (extra or w != "uv-pip-indexes")
    ]
    with tempfile.TemporaryDirectory(prefix="cumulo-bench-envs-") as tmp:
        for turn in range(opts.repeat):
            envs = Path(tmp) / f"uv-{turn}"  # a new machine's environment cache: no uv cache
            results = {}
            results["uv-empty"] = _build(envs, "uv")
            if turn == 0:
                _check(results["uv-empty"][2])
            _forget(results["uv-empty"][2])  # the uv cache beside it stays warm
            results["uv-warm"] = _build(envs, "uv")
            results["reuse"] = _build(envs, "uv")
            shutil.rmtree(envs)
            if extra:
                envs = Path(tmp) / f"uv-indexes-{turn}"
                results["uv-pip-indexes"] = _build(envs, "uv", PIP_EXTRA_INDEX_URL=extra)
                shutil.rmtree(envs)
            if not opts.no_pip:
                envs, pip_cache = Path(tmp) / f"pip-{turn}", Path(tmp) / f"pip-cache-{turn}"
                results["pip-empty"] = _build(envs, "pip", PIP_CACHE_DIR=str(pip_cache))
                if turn == 0:
                    _check(results["pip-empty"][2])
                shutil.rmtree(envs)
                shutil.rmtree(pip_cache, ignore_errors=True)
            for way in ways:
                seconds, load, _ = results[way]
                out[way].append(seconds)
                out["loads"][way].append(load)
                harness.log(f"turn {turn + 1}: {way}: {seconds:.3f} s (load {load:.1f})")
    out["ways"] = ways
    out["extra"] = extra
    return out


def _seconds(value: float) -> str:
    if value < 0.01:
        return f"{value * 1000:.2f} ms"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _uv_version() -> str:
    out = subprocess.run([uv_binary(), "--version"], capture_output=True, text=True)
    return out.stdout.strip()


def _pip_version() -> str:
    out = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
    return " ".join(out.stdout.split()[:2])


def report(opts: argparse.Namespace, m: dict[str, Any], command: list[str], started: float) -> str:
    rows = []
    for way, title in WAYS:
        if way not in m["ways"]:
            continue
        times, loads = m[way], m["loads"][way]
        rows.append(
            [
                title,
                _seconds(statistics.median(times)),
                f"{_seconds(min(times))} – {_seconds(max(times))}",
                f"{min(loads):.1f} – {max(loads):.1f}",
                str(len(times)),
            ]
        )
    cold_empty, cold_warm = statistics.median(m["uv-empty"]), statistics.median(m["uv-warm"])
    reuse = statistics.median(m["reuse"])
    lines = [
        "## Environments: building the demo's requirements with uv, and with pip",
        "",
        harness.header(
            "envs",
            command,
            started,
            extra=[
                f"- Requirements: {', '.join(f'`{r}`' for r in REQUIREMENTS)} into a new "
                f"virtual environment, through `ensure_environment` (what a job or endpoint "
                f"builds with, without the job around it); {_uv_version()}, {_pip_version()}; "
                "packages from PyPI through this machine's network",
                f"- {opts.repeat} builds of each way, the ways interleaved; the load column is "
                "the 1-minute load average read before each build",
            ],
        ),
        "",
        harness.table(["build", "median", "range", "load average", "builds"], rows),
        "",
        f"- Goal: a new environment of these requirements in under {COLD_GOAL_S:g} s: "
        f"{_seconds(cold_warm)} with a warm uv cache ({_met(cold_warm < COLD_GOAL_S)}), "
        f"{_seconds(cold_empty)} with an empty one ({_met(cold_empty < COLD_GOAL_S)}).",
        f"- Goal: a built environment reused in under {_seconds(REUSE_GOAL_S)}: "
        f"{_seconds(reuse)} ({_met(reuse < REUSE_GOAL_S)}).",
    ]
    if cold_empty >= COLD_GOAL_S:
        lines.append(
            "- With an empty uv cache every wheel (scikit-learn, SciPy, NumPy, pandas and "
            "their dependencies) is fetched and unpacked first; on this shared machine that "
            "takes longer than the goal. A machine that has built these packages once "
            "builds every later new spec of them from its warm cache."
        )
    if "pip-empty" in m["ways"]:
        pip_empty = statistics.median(m["pip-empty"])
        same = "uv-pip-indexes" if "uv-pip-indexes" in m["ways"] else "uv-empty"
        lines.append(
            f"- uv against pip, both with empty caches and the same indexes: "
            f"{pip_empty / statistics.median(m[same]):.1f}× faster; with its cache warm, "
            f"{pip_empty / cold_warm:.1f}× faster."
        )
    if m.get("extra"):
        lines += [
            "",
            f"pip on this machine is set up through its config files, which add the extra "
            f"indexes `{m['extra']}` (wheels on this machine's disk, for some of these "
            "packages; the others come from PyPI). uv reads no pip config file, so its plain "
            "rows fetch every wheel from PyPI over the network, while the row with pip's "
            "configured extra indexes (as `PIP_EXTRA_INDEX_URL`, which the build hands to "
            "uv) draws on the same sources as pip.",
        ]
    lines += [
        "",
        f"A warm uv cache is the cache in `{UV_CACHE}` beside the environments: once a "
        "machine has built any environment of these packages, a new spec that shares them "
        "links their files from there (hardlinks on one file system) instead of downloading "
        "and unpacking them. The empty-cache builds download every wheel, so they also "
        "measure this machine's network. Reuse is the spec's ready mark found; it spawns "
        "nothing. This machine is shared by several people running tests and builds on 2 "
        "cores: the load column says how busy it was, and the absolute figures move with it "
        "(the ratios, measured in the same turns, move less).",
    ]
    return "\n".join(lines)


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def run(args: argparse.Namespace, command: list[str]) -> str:
    """For ``benchmarks/run.py envs``."""
    opts = parser().parse_args([f"--repeat={getattr(args, 'env_repeat', 3)}"])
    started = time.time()
    return report(opts, measure(opts), command, started)


def main() -> None:
    opts = parser().parse_args()
    started = time.time()
    command = ["python", "benchmarks/env_build.py", *sys.argv[1:]]
    section = report(opts, measure(opts), command, started)
    harness.write_section("envs", section)
    print(section)


if __name__ == "__main__":
    main()
