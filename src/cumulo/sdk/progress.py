"""Progress of long transfers (uploads, downloads, code snapshots).

A bar shows on a terminal or in a notebook once a transfer is big enough to
take a while; logs and pipes stay quiet unless ``show=True`` asks for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import IO

# Below this a transfer is over before a bar would help.
SHOW_FROM_BYTES = 16 * 1024 * 1024

Advance = Callable[[int], None]


@contextlib.contextmanager
def transfer(label: str, total: int, show: bool | None = None) -> Iterator[Advance]:
    """Yields ``advance(n_bytes)``; draws a bar when ``show`` or when worth it here."""
    # Loaded here: a script that logs metrics never draws a bar (rich takes a while to import).
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    if show is None:
        show = total >= SHOW_FROM_BYTES and (console.is_terminal or console.is_jupyter)
    if not show:
        yield _ignore
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _ignore(_n: int) -> None:
    return None


class CountingReader:
    """A file read through it reports each chunk to ``advance``."""

    def __init__(self, raw: IO[bytes], advance: Advance) -> None:
        self.raw = raw
        self.advance = advance

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.advance(len(data))
        return data
