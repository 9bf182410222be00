"""The README's code runs as written: its Python blocks in order, in one namespace, in a
fresh home and folder, and the ``cumulo`` lines of its shell blocks between them.

The blocks name a training script, an entry script and a pipeline's steps
(``src/train.py``, ``serve/score.py``, ``pipeline/``) and point at them in
``examples/``: they are copied there.
The server the README starts on port 5000 is one this test starts.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cumulo.cli.main import app

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
# Lines that start a server, or need one that checks tokens: the test's server stands in.
NOT_RUN_HERE = ("cumulo server", "cumulo token", "cumulo audit")


def readme_blocks() -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in BLOCK.findall(README.read_text()) if lang in
            ("python", "bash")]  # fmt: skip


def test_the_readme_has_the_blocks_this_test_runs() -> None:
    langs = [lang for lang, _ in readme_blocks()]
    assert langs.count("python") >= 5 and langs.count("bash") >= 3


def _cli_lines(body: str) -> list[list[str]]:
    lines = []
    for raw in body.splitlines():
        words = shlex.split(raw, comments=True)
        if words and words[0] == "cumulo" and not raw.startswith(NOT_RUN_HERE):
            lines.append(words[1:])
    return lines


@pytest.mark.slow
@pytest.mark.timeout(900)  # a scikit-learn environment build, a sweep and a deployment
def test_the_readme_runs_as_written(
    cumulo_server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "src").mkdir()
    shutil.copy(ROOT / "examples" / "train.py", tmp_path / "src" / "train.py")
    shutil.copytree(ROOT / "examples" / "serve", tmp_path / "serve")
    shutil.copytree(ROOT / "examples" / "pipeline", tmp_path / "pipeline")
    namespace: dict[str, Any] = {}
    runner = CliRunner()
    ran = 0
    for number, (lang, body) in enumerate(readme_blocks(), 1):
        text = body.replace("http://127.0.0.1:5000", cumulo_server_url)
        if lang == "python":
            exec(compile(text, f"README.md block {number}", "exec"), namespace)
            ran += 1
            continue
        for args in _cli_lines(text):
            args = [namespace["run"].id[:8] if a == "RUN_ID" else a for a in args]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, f"cumulo {' '.join(args)}:\n{result.output}"
            ran += 1
    assert ran >= 14  # six Python blocks and eight commands
    endpoint = namespace["endpoint"]
    assert endpoint.traffic == {"blue": 90, "green": 10}
    assert namespace["best"].get_metrics()["accuracy"][-1] > 0.5
    endpoint.delete()


def test_the_readme_lists_every_command_group() -> None:
    from cumulo.cli.main import COMMANDS

    text = " ".join(README.read_text().split())
    listing = text.split("`cumulo --help` lists every group: ", 1)[1].split(";", 1)[0]
    assert re.findall(r"`([\w-]+)`", listing) == list(COMMANDS)
