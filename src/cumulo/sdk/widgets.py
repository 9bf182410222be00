"""``RunDetails``: a live view of a run in a notebook.

It shows the run's status, a chart of each logged metric, the last lines of
its logs, its child runs (sweep trials, pipeline steps) and a link to the run
in the studio, and keeps them current while the run runs: the output is
displayed once with a display id and updated in place from a background
thread, which stops when the run ends. Outside a notebook front end (a plain
``python`` or a terminal IPython) ``show()`` prints the same facts as text.

Example::

    from cumulo import RunDetails
    run = exp.submit(config)
    RunDetails(run).show()
"""

from __future__ import annotations

import collections
import html
import math
import sys
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from cumulo.core import system_metrics
from cumulo.core.entities import RunInfo
from cumulo.core.errors import ConfigError, CumuloError
from cumulo.core.status import RunStatus
from cumulo.sdk import display

if TYPE_CHECKING:
    from cumulo.sdk.transport import Transport

MAX_CHARTS = 8
MAX_POINTS = 300
MAX_CHILDREN = 50
_W, _H = 220, 70


class ShownWorkspace(Protocol):
    """What the view reads of a run's workspace."""

    @property
    def name(self) -> str: ...
    @property
    def transport(self) -> Transport: ...


class ShownRun(Protocol):
    """What the view reads of a run (``sdk/run.py``'s ``RunTracking`` is one)."""

    @property
    def workspace(self) -> ShownWorkspace: ...
    @property
    def id(self) -> str: ...
    @property
    def info(self) -> RunInfo: ...
    def refresh(self) -> object: ...
    def get_portal_url(self) -> str: ...
    def get_children(self) -> Iterable[ShownRun]: ...


def notebook_display() -> Any | None:
    """``IPython.display`` when this process is a notebook kernel, else None.

    IPython is never imported here: a kernel has imported it already.
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    shell = ipython.get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return None  # a terminal IPython: no front end to draw HTML
    return ipython.display


class RunDetails:
    """A live view of ``run``: status, metric charts, last log lines, child runs, studio link.

    ``show()`` displays it and updates it every ``interval`` seconds until the
    run ends; ``get_html()`` and ``get_text()`` give one snapshot.
    """

    def __init__(self, run: ShownRun, interval: float = 2.0, log_lines: int = 20) -> None:
        self.run = run
        self.interval = interval
        self._tail: collections.deque[str] = collections.deque(maxlen=log_lines)
        self._after = 0
        self._partial = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle: Any = None

    # -------------------------------------------------------------- snapshot
    def _read_logs(self) -> None:
        jobs = self.run.workspace.transport.jobs
        while True:
            try:
                page = jobs.get_logs(self.run.workspace.name, self.run.id, after=self._after)
            except CumuloError:
                return  # an interactive run has no job logs
            text = "".join(c.text for c in page.chunks)
            self._after = page.next_seq
            if text:
                lines = (self._partial + text).split("\n")
                self._partial = lines.pop()
                self._tail.extend(lines)
            if not page.chunks:
                return

    def _series(self) -> dict[str, list[float]]:
        data = self.run.workspace.transport.tracking.get_run_metrics(
            self.run.workspace.name, self.run.id
        )
        out: dict[str, list[float]] = {}
        # The run's own metrics; its system/ series would crowd them out of the chart limit.
        own = sorted((k, s) for k, s in data["series"].items() if not system_metrics.is_system(k))
        for key, s in own[:MAX_CHARTS]:
            values = [float(v) for v in s["value"]]
            stride = max(1, math.ceil(len(values) / MAX_POINTS))
            out[key] = values[::stride] if stride > 1 else values
        return out

    def _link(self) -> str | None:
        try:
            return self.run.get_portal_url()
        except ConfigError:
            return None

    def _children(self) -> list[ShownRun]:
        children = []
        for child in self.run.get_children():
            children.append(child)
            if len(children) >= MAX_CHILDREN:
                break
        return children

    def get_html(self) -> str:
        """The view as HTML, read now."""
        self.run.refresh()
        info = self.run.info
        self._read_logs()
        head = (
            f"<b>{html.escape(info.experiment_name)} #{info.number} — "
            f"{html.escape(info.display_name)}</b> {display.status_badge(info.status)} "
            f'<span style="color:#57606a">{html.escape(display.duration(info.duration))}'
            f" · {html.escape(info.id)}</span>"
        )
        link = self._link()
        if link:
            head += f' · <a href="{html.escape(link)}" target="_blank">open in the studio</a>'
        parts = [f"<div>{head}</div>"]
        if info.error:
            message = str(info.error.get("message", ""))
            parts.append(f'<div style="color:#cf222e">{html.escape(message)}</div>')
        charts = "".join(_chart(k, v) for k, v in self._series().items())
        if charts:
            parts.append(f'<div style="display:flex;flex-wrap:wrap;gap:8px">{charts}</div>')
        children = self._children()
        if children:
            # The children's own metrics: their system/ series would fill the columns.
            own = {k for c in children for k in c.info.metrics if not system_metrics.is_system(k)}
            keys = sorted(own)[:4]
            rows = [
                [
                    c.info.number,
                    c.info.display_name,
                    display.status_badge(c.info.status),
                    *[
                        display.fmt_value(c.info.metrics[k].value) if k in c.info.metrics else ""
                        for k in keys
                    ],
                ]
                for c in children
            ]
            parts.append(display.table(["#", "child run", "status", *keys], rows, raw={2}))
        if self._tail:
            logs = html.escape("\n".join(self._tail))
            parts.append(
                '<pre style="max-height:16em;overflow:auto;background:#f6f8fa;padding:4px;'
                f'font-size:12px;margin:4px 0">{logs}</pre>'
            )
        style = "font-family:system-ui,sans-serif;font-size:13px"
        return f'<div style="{style}">' + "".join(parts) + "</div>"

    def get_text(self) -> str:
        """The view as plain text, read now (what ``show()`` prints outside a notebook)."""
        self.run.refresh()
        info = self.run.info
        self._read_logs()
        lines = [
            f"{info.experiment_name} #{info.number} {info.display_name} ({info.id}): "
            f"{info.status} {display.duration(info.duration)}".rstrip()
        ]
        link = self._link()
        if link:
            lines.append(f"studio: {link}")
        if info.error:
            lines.append(f"error: {info.error.get('message', '')}")
        for key, values in self._series().items():
            if values:
                lines.append(f"  {key}: {display.fmt_value(values[-1])} ({len(values)} points)")
        children = self._children()
        if children:
            counts = collections.Counter(c.info.status for c in children)
            lines.append(
                f"  {len(children)} child runs: "
                + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            )
        lines += [f"  | {line}" for line in self._tail]
        return "\n".join(lines)

    # ------------------------------------------------------------------ live
    def show(self) -> None:
        """Display the view; in a notebook it updates itself until the run ends."""
        ipd = notebook_display()
        if ipd is None:
            print(self.get_text())
            return
        self._handle = ipd.display(ipd.HTML(self.get_html()), display_id=True)
        if not RunStatus(self.run.info.status).is_terminal:
            self._thread = threading.Thread(
                target=self._follow, args=(ipd,), name="cumulo-run-details", daemon=True
            )
            self._thread.start()

    def _follow(self, ipd: Any) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._handle.update(ipd.HTML(self.get_html()))
            except Exception:  # the kernel is going away, or the store is: stop quietly
                return
            if RunStatus(self.run.info.status).is_terminal:
                return

    def wait(self, timeout: float | None = None) -> None:
        """Block until the live view has shown the run's end (or ``timeout`` passes)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        """Stop updating the view (it keeps what it shows)."""
        self._stop.set()

    def _ipython_display_(self) -> None:
        self.show()


def _chart(key: str, values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    title = html.escape(key)
    if not finite:
        return ""
    lo, hi = min(finite), max(finite)
    span = (hi - lo) or 1.0
    n = max(len(values) - 1, 1)
    points = " ".join(
        f"{i * (_W - 4) / n + 2:.1f},{_H - 14 - (v - lo) / span * (_H - 24):.1f}"
        for i, v in enumerate(values)
        if math.isfinite(v)
    )
    last = html.escape(display.fmt_value(values[-1]))
    return (
        f'<svg width="{_W}" height="{_H}" style="border:1px solid #d0d7de;border-radius:4px">'
        f'<text x="4" y="11" font-size="11">{title}: {last}</text>'
        f'<polyline fill="none" stroke="#0969da" stroke-width="1.5" points="{points}"/>'
        f'<text x="4" y="{_H - 2}" font-size="9" fill="#57606a">'
        f"{html.escape(display.fmt_value(lo))} … {html.escape(display.fmt_value(hi))}</text>"
        "</svg>"
    )
