"""HTML for notebooks: workspaces, experiments and runs render as small tables."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Sequence
from typing import Any

_STYLE = "border-collapse:collapse;font-family:system-ui,sans-serif;font-size:13px;margin:4px 0"
_COLOURS = {
    "Completed": "#1a7f37",
    "Failed": "#cf222e",
    "Canceled": "#6e7781",
    "Running": "#0969da",
    "Queued": "#9a6700",
}


def when(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s" if m else f"{s}s"


def status_badge(status: str) -> str:
    colour = _COLOURS.get(status, "#57606a")
    return f'<span style="color:{colour};font-weight:600">{html.escape(status)}</span>'


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], raw: set[int] | None = None
) -> str:
    raw = raw or set()
    head = "".join(
        f'<th style="text-align:left;padding:2px 8px;border-bottom:1px solid #ccc">'
        f"{html.escape(h)}</th>"
        for h in headers
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td style="padding:2px 8px">{c if i in raw else html.escape(fmt_value(c))}</td>'
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table style="{_STYLE}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def titled(title: str, body: str) -> str:
    return f"<div><b>{html.escape(title)}</b>{body}</div>"
