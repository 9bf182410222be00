"""Shared plumbing of the benchmarks: environments, side processes, the figures file.

Every benchmark runs Cumulo and its rivals side by side in one invocation,
each side in a process of its own (Cumulo from the project's ``.venv``, MLflow
and FastTrackML from virtual environments under ``benchmarks/.work``), and
writes one section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
SIDES = BENCH / "sides"
WORK = BENCH / ".work"
DOC = ROOT / "docs" / "benchmarks.md"

MLFLOW_REQUIREMENT = "mlflow==3.17.2"
FASTTRACKML_REQUIREMENT = "fasttrackml==0.6.0"

INTRO = """# Benchmarks

Cumulo measured side by side with its rivals in one run on the same machine:
MLflow for the store, the server, the studio and serving (and FastTrackML for
the server), Ray's own job tools for jobs. Each figure below was taken in the
same invocation as the figure it is compared with, and the comparison is given
as a ratio, since absolute figures move with the machine and its load.

Run every benchmark with `make bench` (`.venv/bin/python benchmarks/run.py`),
or some by name with `.venv/bin/python benchmarks/run.py <name>...` (`store`,
`server`, `studio`, `serving`, `jobs`, `failover`; `--help` lists the options of
each). The studio, serving, failover and several-servers benchmarks also run on
their own (`.venv/bin/python benchmarks/studio.py`, `benchmarks/serving.py`,
`benchmarks/failover.py`, `benchmarks/multi_host.py`, the last as root); each
section names the command it came from. MLflow is installed in the
benchmarks' own environment (`benchmarks/.work/mlflow-venv`,
`mlflow==3.17.2`), FastTrackML in another (`benchmarks/.work/fml-venv`); both
are created on first use. Seeded databases are kept in `benchmarks/.work` so
later runs skip seeding; `--fresh` seeds again. The studio benchmark needs
Chromium (`make chromium`); the jobs benchmark's Ray rows need Ray
(`pip install 'cumulo[ray]'`, done by `make test`) and start and stop a Ray
head of their own. Each run rewrites its own section below and leaves the
others alone.

The machine these figures come from is shared, so each section states its load
average: absolute figures drop when it is busy, while the ratios, measured in
the same run, move much less.
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A benchmark could not run; the message says what failed and where its log is."""


# ------------------------------------------------------------------ machine
def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = int(line.split()[1]) / 1024 / 1024
                break
    except OSError:
        pass
    return info


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev}{' + uncommitted changes in src/' if dirty else ''}"


def load() -> float | None:
    """The 1-minute load average: the machine may be shared, so figures say how busy it was."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def header(
    name: str,
    command: Sequence[str],
    started: float,
    extra: Iterable[str] = (),
    load_at_start: float | None = None,
) -> str:
    m = machine()
    when = datetime.datetime.fromtimestamp(started, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    memory = f"{m['memory_gib']:.0f} GiB" if "memory_gib" in m else "unknown memory"
    loads = []
    if load_at_start is not None:
        loads.append(f"{load_at_start:.1f} at the start")
    if load() is not None:
        loads.append(f"{load():.1f} at the end")
    lines = [
        f"- Command: `{shlex.join(command)}`",
        f"- Date: {when}; took {time.time() - started:.0f} s",
        f"- Machine: {m['cores']} cores ({m['cpu']}), {memory}, {m['os']}, Python {m['python']}"
        + (f"; load average {', '.join(loads)}" if loads else ""),
        f"- Cumulo: git {git_revision()}",
        *extra,
    ]
    return "\n".join(lines)


# ----------------------------------------------------------- environments
@dataclass(frozen=True)
class Venv:
    """A virtual environment of its own for a rival, created once and checked by a stamp."""

    path: Path
    requirements: tuple[str, ...]

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def ensure(self) -> Path:
        stamp = self.path / ".bench-requirements"
        wanted = "\n".join(self.requirements)
        if self.python.exists() and stamp.exists() and stamp.read_text() == wanted:
            return self.python
        print(f"creating {self.path} with {' '.join(self.requirements)}", file=sys.stderr)
        base = getattr(sys, "_base_executable", sys.executable)
        _check([base, "-m", "venv", str(self.path)], f"creating {self.path}")
        _check(
            [str(self.python), "-m", "pip", "install", "-q", *self.requirements],
            f"installing {' '.join(self.requirements)} into {self.path}",
        )
        stamp.write_text(wanted)
        return self.python


def _check(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise BenchError(f"Failed {what} (exit {proc.returncode}):\n{tail}")


MLFLOW_VENV = Venv(WORK / "mlflow-venv", (MLFLOW_REQUIREMENT,))
FASTTRACKML_VENV = Venv(WORK / "fml-venv", (FASTTRACKML_REQUIREMENT,))


def cumulo_python() -> Path:
    """Cumulo runs from the project's own environment."""
    own = ROOT / ".venv" / "bin" / "python"
    return own if own.exists() else Path(sys.executable)


def side_env(**extra: str) -> dict[str, str]:
    """A clean environment for a side: no inherited tracking settings, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUMULO_", "MLFLOW_", "AWS_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_side(
    python: Path,
    script: str,
    workdir: Path,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 1200,
) -> dict[str, Any]:
    """Run ``sides/<script>`` with ``python``; its figures come back through a JSON file."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "result.json"
    log_file = workdir / "side.log"
    cmd = [str(python), str(SIDES / script), "--workdir", str(workdir), "--out", str(out), *args]
    with open(log_file, "w") as fh:
        try:
            proc = subprocess.run(
                cmd, stdout=fh, stderr=subprocess.STDOUT, env=env or side_env(), timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{script} ran past {timeout:.0f} s; see {log_file}") from exc
    if proc.returncode != 0 or not out.exists():
        tail = "\n".join(log_file.read_text().strip().splitlines()[-20:])
        raise BenchError(f"{script} failed (exit {proc.returncode}); {log_file}:\n{tail}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def seed_cache(side: str, version: str, runs: int) -> Path:
    return WORK / "seed" / f"{side}-{version}-{runs}runs"


def prune_caches(keep: Path) -> None:
    """Drop older seed caches of the same side and size (the sources they were keyed on moved)."""
    side, _version, runs = keep.name.split("-", 2)
    for other in keep.parent.glob(f"{side}-*-{runs}"):
        if other != keep:
            shutil.rmtree(other, ignore_errors=True)


def source_hash(*paths: Path) -> str:
    """A short hash of the Python sources at ``paths`` (files or folders)."""
    digest = hashlib.sha256()
    for path in paths:
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(ROOT)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def cumulo_schema_hash() -> str:
    """Keys Cumulo's seed cache: a seeded database is reusable while the schema is the same."""
    store = ROOT / "src" / "cumulo" / "store"
    return source_hash(store / "migrations", *sorted(store.glob("schema*.py")))


# -------------------------------------------------------------- formatting
def rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.01:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds * 1000:.1f} ms"


def ratio(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}×"
    if value >= 10:
        return f"{value:.0f}×"
    if value >= 1:
        return f"{value:.1f}×"
    return f"{value:.2g}×"


def compare(value: float | None, words: tuple[str, str] | None = None) -> str:
    """A ratio for a table: ``16×`` for rates, ``4.9× faster`` / ``69× slower`` with words."""
    if value is None:
        return "—"
    if words is None:
        return ratio(value)
    if round(value, 2) == 1:
        return "same"
    return f"{ratio(value)} {words[0]}" if value >= 1 else f"{ratio(1 / value)} {words[1]}"


def verdict(value: float, target: float) -> str:
    return "**met**" if value >= target else "**not met**"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ----------------------------------------------------------- figures file
def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with the section ``name`` replaced by ``body`` (appended if it is new)."""
    begin, end = markers(name)
    block = f"{begin}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _m: block, text, count=1)
    return text.rstrip("\n") + "\n\n" + block + "\n"


def write_section(name: str, body: str, doc: Path = DOC) -> None:
    text = doc.read_text() if doc.exists() else INTRO
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(replace_section(text, name, body))
