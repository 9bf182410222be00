"""Reads the fenced code blocks of a Markdown page and runs them as a reader would.

The conventions a page follows (docs/contributing-docs.md says the same for writers):

- ```` ```python ```` blocks run in order, in one namespace per page, in a fresh
  ``CUMULO_HOME`` and a fresh working folder per page (``HOME`` is that folder too).
- ```` ```bash ```` blocks run whole, in bash (``set -eo pipefail``), in that folder,
  with the interpreter's ``bin`` folder first on ``PATH`` (so ``cumulo`` and ``python``
  are the test's); the variables a block sets (``RUN=$(...)``, exported or not)
  and where it ``cd``s carry on to the page's later blocks. A line that starts a
  server (``cumulo server ...``) is replaced by the server the test starts over
  the page's home, and the page's ``127.0.0.1:5000`` is rewritten to its address.
  A page's PostgreSQL URL, ``postgresql://cumulo:...@db:5432/cumulo``, is
  rewritten to a fresh database on the test's PostgreSQL server.
- A block with a title (```` ```python title="train.py" ````, ```` ```yaml
  title="pipeline.yml" ````) is written to that file in the page's folder instead
  of being run.
- Blocks without a language, ``text``/``console``/``output`` blocks, and data blocks
  (``yaml``, ``json``, ``toml``, ``sql``, ``ini``) without a title are shown, not run.
- A block right after ``<!-- not-run: reason -->`` is skipped; the reason is
  required.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

RUN_LANGS = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
SHOWN_LANGS = {"", "text", "console", "output", "yaml", "yml", "json", "toml", "sql", "ini"}
# As in CommonMark, a backtick fence's info string has no backtick (else it is inline code).
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)[ \t]*(?P<lang>[\w+-]*)(?P<info>[^`]*)$"
)
TITLE = re.compile(r"""title=["']([^"']+)["']""")
NOT_RUN = re.compile(r"<!--\s*not-run\b:?(?P<reason>.*?)-->", re.S)
# The address the pages give their server; the test's server stands in for it.
PAGE_SERVER = re.compile(r"(?:127\.0\.0\.1|localhost):5000")
SERVER_LINE = re.compile(r"^\s*cumulo\s+server\b")
# The PostgreSQL URL the pages give; a database on the test's PostgreSQL server stands in.
PAGE_DATABASE = "postgresql://cumulo:...@db:5432/cumulo"
# Blocks that start jobs, sweeps, pipelines, endpoints, servers or clusters make a page slow.
HEAVY = re.compile(
    r"\.submit\(|wait_for_completion|\bcumulo (?:job|sweep|pipeline|endpoint|server)\b"
    r"|\.deploy\(|RayCluster|:5000|postgresql"
)


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    title: str | None
    body: str
    not_run: str | None  # the reason given, when the block is marked not-run

    @property
    def kind(self) -> str:
        """``not-run``, ``file`` (written), ``python``/``bash`` (run), or ``shown``."""
        if self.not_run is not None:
            return "not-run"
        if self.title:
            return "file"
        if self.lang in RUN_LANGS:
            return RUN_LANGS[self.lang]
        return "shown"

    def where(self) -> str:
        return f"{self.page}:{self.line}"


def parse(text: str, page: str) -> list[Block]:
    """The page's fenced blocks, each with its language, title and not-run mark."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    last_text = ""  # the last non-blank line before the current one
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            if lines[i].strip():
                last_text = lines[i]
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = FENCE.match(lines[j])
            if closing and closing["fence"].startswith(fence) and not closing["lang"]:
                break
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        else:
            raise ValueError(f"{page}:{i + 1}: a code block is never closed")
        title = TITLE.search(opening["info"])
        mark = NOT_RUN.search(last_text)
        blocks.append(
            Block(
                page=page,
                line=i + 1,
                lang=opening["lang"].lower(),
                title=title[1] if title else None,
                body="\n".join(body) + "\n",
                not_run=mark["reason"].strip() if mark else None,
            )
        )
        last_text = lines[j]
        i = j + 1
    return blocks


# The first line of an untagged block that is code, not shown text.
LOOKS_LIKE_CODE = re.compile(r"^\s*(?:cumulo |curl |python |from \w|import \w|\w+ = )")


def unknown_languages(blocks: list[Block]) -> list[str]:
    """Blocks in a language this runner neither runs nor knows as shown text, and
    untagged blocks that look like code (they would be shown, never run)."""
    unknown = [
        f"{b.where()}: {b.lang!r}"
        for b in blocks
        if not b.title and b.lang not in RUN_LANGS and b.lang not in SHOWN_LANGS
    ]
    untagged = [
        f"{b.where()}: untagged code"
        for b in blocks
        if not b.lang and not b.title and LOOKS_LIKE_CODE.match(b.body.lstrip("\n"))
    ]
    return unknown + untagged


def is_heavy(blocks: list[Block]) -> bool:
    return any(HEAVY.search(b.body) for b in blocks if b.kind in ("python", "bash", "file"))


def needs_database(blocks: list[Block]) -> bool:
    return any(PAGE_DATABASE in b.body for b in blocks if b.kind in ("python", "bash", "file"))


def needs_server(blocks: list[Block]) -> bool:
    return any(
        PAGE_SERVER.search(b.body) or any(SERVER_LINE.match(x) for x in b.body.splitlines())
        for b in blocks
        if b.kind in ("python", "bash", "file")
    )


@dataclass
class Tally:
    ran: int = 0
    written: int = 0
    shown: int = 0
    not_run: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.ran} run, {self.written} written, {self.shown} shown, "
            f"{len(self.not_run)} not run"
        )


class BlockFailed(AssertionError):
    pass


class PageRunner:
    """Runs one page's blocks in ``folder`` (the working folder, already current)."""

    def __init__(
        self,
        folder: Path,
        server_url: str | None,
        monkeypatch: pytest.MonkeyPatch,
        database_url: str | None = None,
    ) -> None:
        self.folder = folder
        self.server_url = server_url
        self.database_url = database_url
        self.monkeypatch = monkeypatch  # a block's exports last for the page's test only
        self.namespace: dict[str, Any] = {"__name__": "__main__"}
        self.output = io.StringIO()
        self.state = folder / ".snippet-state"
        self.state.mkdir(exist_ok=True)

    def text(self, block: Block) -> str:
        body = block.body
        if self.server_url is not None:
            body = PAGE_SERVER.sub(self.server_url.removeprefix("http://"), body)
        if self.database_url is not None:
            body = body.replace(PAGE_DATABASE, self.database_url)
        return body

    def run(self, blocks: list[Block]) -> Tally:
        tally = Tally()
        for block in blocks:
            kind = block.kind
            if kind == "not-run":
                tally.not_run.append(f"{block.where()}: {block.not_run}")
            elif kind == "file":
                assert block.title is not None
                target = self.folder / block.title
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(self.text(block))
                tally.written += 1
            elif kind == "python":
                self.python(block)
                tally.ran += 1
            elif kind == "bash":
                self.bash(block)
                tally.ran += 1
            else:
                tally.shown += 1
        return tally

    def python(self, block: Block) -> None:
        # Leading newlines make a traceback's line numbers those of the page.
        code = compile("\n" * block.line + self.text(block), block.page, "exec")
        with _tee(self.output):
            exec(code, self.namespace)

    def bash(self, block: Block) -> None:
        lines, skipping = [], False
        for line in self.text(block).splitlines():
            if SERVER_LINE.match(line) or skipping:
                skipping = line.rstrip().endswith("\\")
                # No quote mark: an unpaired one would break the script.
                lines.append(": the test server stands in for this line")
                continue
            lines.append(line)
        script = "\n".join(
            [
                "set -eo pipefail",
                "set -a",  # variables a block sets carry on to the page's later blocks
                "trap 'echo \"snippet line failed: $BASH_COMMAND\" >&2' ERR",
                *lines,
                f"env -0 > {self.state}/env",
                f"pwd > {self.state}/pwd",
            ]
        )
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=os.getcwd(),
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=900,
        )
        self.output.write(done.stdout)
        sys.stdout.write(done.stdout)
        if done.returncode != 0:
            raise BlockFailed(f"{block.where()}: bash exited {done.returncode}:\n{done.stdout}")
        # What the block exported and where it went carry on to the next blocks.
        exported = (self.state / "env").read_text().split("\0")
        after = dict(item.split("=", 1) for item in exported if "=" in item)
        for key, value in after.items():
            if os.environ.get(key) != value and key not in ("_", "SHLVL", "PWD", "OLDPWD"):
                self.monkeypatch.setenv(key, value)
        self.monkeypatch.chdir((self.state / "pwd").read_text().strip())


@contextlib.contextmanager
def _tee(buffer: io.StringIO) -> Iterator[None]:
    """Prints go to pytest's captured output and to ``buffer``, for the page's checks."""
    real = sys.stdout

    class Tee(io.TextIOBase):
        def write(self, s: str) -> int:
            buffer.write(s)
            return real.write(s)

        def flush(self) -> None:
            real.flush()

    with contextlib.redirect_stdout(Tee()):  # type: ignore[type-var]
        yield
