"""A failed job's combined log keeps the order the script wrote its lines in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cumulo.compute.runner import run_job

SCRIPT = """\
for i in range(30):
    print("line", i)
raise ValueError("boom")
"""


class Channel:
    """What the runner reports to, kept in memory: the log chunks in stored order."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, str, int]] = []
        self.status = "Running"

    def get_status(self) -> str:
        return self.status

    def set_status(self, status: str, error: dict[str, Any] | None = None) -> None:
        self.status = status

    def append_logs(self, chunks: list[tuple[str, str, int]]) -> None:
        self.chunks += chunks

    def upload_file(self, name: str, path: Path) -> None:
        pass


def test_traceback_comes_after_the_lines_printed_before_it(tmp_path: Path) -> None:
    # Two pipes read by two threads raced: about every other run put part of the
    # traceback above the last printed lines. Several runs make a race show.
    for attempt in range(20):
        workdir = tmp_path / str(attempt)
        workdir.mkdir()
        (workdir / "train.py").write_text(SCRIPT)
        channel = Channel()
        result = run_job({"script": "train.py"}, channel, workdir)
        assert result["status"] == "Failed"
        output = "".join(text for stream, text, _ in channel.chunks if stream != "system")
        printed = [f"line {i}\n" for i in range(30)]
        assert output.startswith("".join(printed)), output[:600]
        assert output.rstrip().endswith("ValueError: boom")
        stderr = "".join(text for stream, text, _ in channel.chunks if stream == "stderr")
        assert stderr.startswith("Traceback") and "line 0" not in stderr
