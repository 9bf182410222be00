"""A workspace shared by a module's pipeline tests, and a step script that passes real data."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cumulo import Workspace
from cumulo.compute import processes
from cumulo.services.context import close_all

__all__ = ["STEP", "module_ws"]

# Reads each --inp folder's data.txt, appends its name, writes --out/data.txt;
# prints when it started and ended; fails when --fail-if names a file that exists.
STEP = """\
import argparse, os, pathlib, time
p = argparse.ArgumentParser()
p.add_argument("--name")
p.add_argument("--inp", action="append", default=[])
p.add_argument("--out")
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--fail-if", default="")
p.add_argument("--tag", default="")
a = p.parse_args()
start = time.time()
time.sleep(a.sleep)
if a.fail_if and os.path.exists(a.fail_if):
    raise SystemExit(f"{a.name} fails: {a.fail_if} exists")
text = "".join(pathlib.Path(i, "data.txt").read_text() for i in a.inp)
if a.out:
    pathlib.Path(a.out, "data.txt").write_text(text + a.name + ";")
print(f"span {start} {time.time()}")
"""


@pytest.fixture(scope="module")
def module_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    home = tmp_path_factory.mktemp("pipelines-home")
    ws = Workspace.create(f"ws-{uuid.uuid4().hex[:8]}", home=home)
    src = home.parent / "src"
    src.mkdir(exist_ok=True)
    (src / "step.py").write_text(STEP)
    yield ws
    close_all(stop_nodes=True)
    with processes._lock:  # the job processes this module started
        children = list(processes._children.values())
        processes._children.clear()
    for proc in children:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            processes.end_groups([proc.pid], grace=2.0)
            proc.wait(10)


def src_dir(ws: Workspace) -> Path:
    settings = ws._settings
    assert settings is not None
    return Path(settings.home).parent / "src"
