"""``cumulo pipeline submit|show|list|publish`` and ``cumulo schedule create|list|disable``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cumulo import Workspace
from cumulo.cli.main import app

cli = CliRunner()

PIPELINE = """\
experiment: from-cli
parameters: {greeting: hello}
steps:
  write:
    source_directory: src
    script: write.py
    arguments: [--text, "${{parameters.greeting}}", --out, "${{outputs.text}}"]
  shout:
    source_directory: src
    script: shout.py
    arguments: [--inp, "${{inputs.text}}"]
"""
WRITE = """\
import argparse, pathlib
p = argparse.ArgumentParser(); p.add_argument("--text"); p.add_argument("--out")
a = p.parse_args()
pathlib.Path(a.out, "t.txt").write_text(a.text)
"""
SHOUT = """\
import argparse, pathlib
p = argparse.ArgumentParser(); p.add_argument("--inp")
print(pathlib.Path(p.parse_args().inp, "t.txt").read_text().upper())
"""


def _files(tmp_path: Path, body: str = PIPELINE) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "write.py").write_text(WRITE)
    (tmp_path / "src" / "shout.py").write_text(SHOUT)
    file = tmp_path / "pipeline.yml"
    file.write_text(body)
    return file


@pytest.mark.slow
def test_submit_show_publish_and_schedule_from_the_command_line(tmp_path: Path) -> None:
    ws = Workspace.create(f"ws-{uuid.uuid4().hex[:8]}")
    file = _files(tmp_path)
    first = cli.invoke(app, ["pipeline", "submit", "-w", ws.name, "-f", str(file)])
    assert first.exit_code == 0, first.output
    assert "shout: Completed" in first.output
    again = cli.invoke(
        app, ["pipeline", "submit", "-w", ws.name, "-f", str(file), "-p", "greeting=hey"]
    )
    assert again.exit_code == 0, again.output
    run_id = again.output.split("Pipeline run ")[-1].split()[0]
    shown = cli.invoke(app, ["pipeline", "show", "-w", ws.name, run_id, "--json"])
    steps = {s["name"]: s for s in json.loads(shown.output)["steps"]}
    assert steps["write"]["reason"] == "parameter greeting changed ('hello' -> 'hey')"
    assert steps["shout"]["reason"] == "input text changed"
    assert "HEY" in ws.get_run(steps["shout"]["run_id"]).get_logs()

    published = cli.invoke(
        app, ["pipeline", "publish", "-w", ws.name, "-f", str(file), "--name", "greeter"]
    )
    assert published.exit_code == 0, published.output
    pipeline_id = published.stdout.strip().splitlines()[-1]
    listed = cli.invoke(app, ["pipeline", "list", "-w", ws.name, "--json"])
    assert [(p["name"], p["version"], p["id"]) for p in json.loads(listed.output)] == [
        ("greeter", "1", pipeline_id)
    ]
    made = cli.invoke(
        app,
        ["schedule", "create", "nightly", "-w", ws.name, "--pipeline", pipeline_id,
         "-e", "nightly", "--cron", "0 3 * * *"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    cli.invoke(app, ["schedule", "disable", "nightly", "-w", ws.name])
    rows = json.loads(cli.invoke(app, ["schedule", "list", "-w", ws.name, "--json"]).output)
    assert [(r["name"], r["cron"], r["enabled"]) for r in rows] == [("nightly", "0 3 * * *", False)]


def test_an_invalid_pipeline_file_is_refused_naming_the_steps(tmp_path: Path) -> None:
    ws = Workspace.create(f"ws-{uuid.uuid4().hex[:8]}")
    body = PIPELINE.replace(
        'arguments: [--inp, "${{inputs.text}}"]', 'arguments: [--inp, "${{inputs.txt}}"]'
    )
    result = cli.invoke(
        app, ["pipeline", "submit", "-w", ws.name, "-f", str(_files(tmp_path, body))]
    )
    assert result.exit_code == 1
    assert "Step 'shout' takes 'txt', which no step produces" in " ".join(result.output.split())
    bad = cli.invoke(
        app,
        ["schedule", "create", "x", "-w", ws.name, "--pipeline", "nope", "-e", "e",
         "--every", "soon"],
    )  # fmt: skip
    assert bad.exit_code == 1
