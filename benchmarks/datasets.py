"""A large file registered as a dataset: time and peak memory, embedded and over HTTP.

    .venv/bin/python benchmarks/datasets.py [--gib 1] [--no-write]
    .venv/bin/python benchmarks/run.py datasets

Writes a file of ``--gib`` GiB (a pseudo-random block repeated with a shift, so
no two MiB are the same), then in a fresh process each:

- the floor: one pass of ``hashlib.sha256`` over the file;
- embedded: ``Dataset.File.from_files(file).register(ws, ...)`` on a new home
  (hash, then copy into the workspace's store);
- over HTTP: the same against a ``cumulo server`` on a loopback port (the client
  hashes and streams the file; the server hashes what arrives as it stores it).

Each process reports its wall time and its peak resident memory (``ru_maxrss``)
less what it held before the call; the server's peak is read from
``/proc/<pid>/status`` (``VmHWM``) against its size when idle. Writes its section
of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20

CHILD = r"""
import hashlib, json, resource, sys, time
mode, path, target = sys.argv[1], sys.argv[2], sys.argv[3]
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if mode == "floor":
    before = peak(); start = time.monotonic()
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
else:
    from cumulo import Dataset, Workspace
    ws = Workspace.create("bench") if mode == "embedded" else Workspace.connect(target, "bench")
    before = peak(); start = time.monotonic()
    Dataset.File.from_files(path).register(ws, "big")
print(json.dumps({"seconds": time.monotonic() - start, "peak": peak(), "before": before}))
"""


def write_file(path: Path, gib: float) -> int:
    block = os.urandom(MIB)
    size = int(gib * 1024) * MIB
    with open(path, "wb") as fh:
        for i in range(size // MIB):
            shift = (i * 7919) % MIB
            fh.write(block[shift:] + block[:shift])
    return size


def child(mode: str, path: Path, target: str, home: Path) -> dict[str, Any]:
    env = {**os.environ, "CUMULO_HOME": str(home), "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), target],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def vm(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def serve(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env = {k: v for k, v in env.items() if not k.startswith("CUMULO_")}
    cmd = [sys.executable, "-m", "cumulo.cli.main", "server", "--home", str(home)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                httpx.post(f"{url}/api/v1/workspaces", json={"name": "bench"}, timeout=10)
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise harness.BenchError("cumulo server did not start")


def measure(gib: float, work: Path) -> dict[str, Any]:
    path = work / "big.bin"
    harness.log(f"writing a {gib:g} GiB file")
    size = write_file(path, gib)
    out: dict[str, Any] = {"size": size}
    harness.log("floor: sha256 of the file")
    out["floor"] = child("floor", path, "", work / "floor-home")
    harness.log("embedded register")
    out["embedded"] = child("embedded", path, "", work / "embedded-home")
    shutil.rmtree(work / "embedded-home", ignore_errors=True)
    harness.log("register over HTTP")
    proc, url = serve(work / "server-home")
    try:
        idle = vm(proc.pid, "VmRSS")
        out["http"] = child("http", path, url, work / "client-home")
        out["server_peak"] = vm(proc.pid, "VmHWM") - idle
    finally:
        proc.terminate()
        proc.wait(30)
    return out


def report(m: dict[str, Any], command: list[str], started: float, load: float | None) -> str:
    size = m["size"]

    def row(label: str, r: dict[str, Any], extra: str = "") -> list[str]:
        held = max(0, r["peak"] - r["before"]) / MIB
        return [
            label,
            harness.duration(r["seconds"]),
            f"{size / MIB / r['seconds']:,.0f} MiB/s",
            f"{held:,.1f} MiB{extra}",
        ]

    rows = [
        row("floor: one sha256 pass", m["floor"]),
        row("embedded `register`: hash + copy into the store", m["embedded"]),
        row(
            "over HTTP `register`: hash + stream (client)",
            m["http"],
            f"; server +{m['server_peak'] / MIB:,.1f} MiB",
        ),
    ]
    ratio = (m["embedded"]["peak"] - m["embedded"]["before"]) / size
    body = "\n".join(
        [
            "## Datasets: a large file hashed and stored in bounded memory",
            "",
            harness.header("datasets", command, started, load_at_start=load),
            f"- File: {size / 2**30:g} GiB, one file",
            "",
            harness.table(["", "wall time", "throughput", "peak memory above the start"], rows),
            "",
            f"Embedded, the process's peak grew by {ratio:.2%} of the file's size: files are "
            "read, hashed and copied in 1 MiB chunks, never whole.",
        ]
    )
    return body


def run(args: argparse.Namespace, command: list[str]) -> str:
    gib = float(getattr(args, "gib", 1.0))
    started, load_at_start = time.time(), harness.load()
    work = Path(tempfile.mkdtemp(prefix="cumulo-bench-datasets-"))
    try:
        measured = measure(gib, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report(measured, command, started, load_at_start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=1.0, help="size of the file in GiB")
    parser.add_argument("--no-write", action="store_true", help="Print, do not write the doc.")
    args = parser.parse_args()
    body = run(args, ["python", "benchmarks/datasets.py", *sys.argv[1:]])
    if not args.no_write:
        harness.write_section("datasets", body)
    print(body)


if __name__ == "__main__":
    main()
