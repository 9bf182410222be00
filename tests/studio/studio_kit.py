"""What the studio tests drive: a seeded home, uvicorn on a free port, a browser tab."""

from __future__ import annotations

import io
import json
import math
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cumulo.core.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A small solid-colour PNG, made without an imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


@dataclass
class Seeded:
    """What the seeding made, for tests to look up."""

    home: Path
    workspace: str
    experiment_id: int = 0
    runs: dict[str, str] = field(default_factory=dict)  # display name -> run id


def seed(home: Path) -> Seeded:
    """A workspace through the SDK: 60 trials, a failed run, a long series, files, images,
    a published pipeline and a schedule."""
    from cumulo import Pipeline, PythonScriptStep, Schedule, Workspace
    from cumulo.sdk.workspace import Experiment

    ws = Workspace.create("vision", home=home, exist_ok=True)
    exp = Experiment(ws, "digits")
    out = Seeded(home=home, workspace=ws.name, experiment_id=exp.id)
    for i in range(60):
        run = exp.start_logging(display_name=f"trial-{i:02d}", tags={"team": "vision"})
        run.log_params({"lr": [0.1, 0.01, 0.001][i % 3], "model": ["rf", "svm"][i % 2]})
        if i == 0:  # a key only the oldest run has: not on the runs table's first page
            run.log_params({"warmup": 100})
        for step in range(20):
            run.log("accuracy", round(0.5 + 0.4 * (i / 60) * (1 - math.exp(-step / 5)), 4), step)
            run.log("loss", math.exp(-step / (5 + i)), step)
        run.complete()
        out.runs[run.display_name] = run.id
    # A finished run with outputs, records, images and a snapshot.
    best = exp.start_logging(display_name="best", tags={"team": "vision", "stage": "final"})
    best.log_params({"lr": 0.05, "model": "mlp"})
    best.log_row("pr", precision=0.91, recall=0.83)
    best.log_row("pr", precision=0.88, recall=0.9)
    best.log_table("confusion", {"label": ["cat", "dog"], "cat": [40, 3], "dog": [2, 45]})
    image = home / "red.png"
    image.write_bytes(png(64, 48, (220, 40, 40)))
    best.log_image("samples", path=image, description="a red square")
    best.log_image("samples", path=image, description="another")
    best.upload_file("outputs/metrics.json", io.BytesIO(json.dumps({"acc": 0.93}).encode()))
    csv = b"id,label,score\n1,cat,0.9\n2,dog,0.7\n"
    best.upload_file("outputs/predictions.csv", io.BytesIO(csv))
    best.upload_file("outputs/plot.png", io.BytesIO(png(32, 32, (20, 120, 220))))
    best.upload_file("outputs/model/weights.bin", io.BytesIO(bytes(range(256)) * 4))
    best.upload_file("snapshot/train.py", io.BytesIO(b"import cumulo\n\nprint('training')\n"))
    points = [("val_loss", 1 / (1 + s / 1000) + 0.05 * math.sin(s / 50), s) for s in range(30_000)]
    ws.transport.tracking.log_batch(
        ws.name, best.id, metrics=[(k, v, s, None) for k, v, s in points]
    )
    best.log("accuracy", 0.95, 0)
    best.complete()
    out.runs["best"] = best.id
    failed = exp.start_logging(display_name="broken")
    try:
        _train_step([1, 2, 3])
    except ValueError as exc:
        failed.fail(exc)
    out.runs["broken"] = failed.id
    parent = exp.start_logging(display_name="sweep")
    for j in range(3):
        child = parent.child_run(f"sweep-child-{j}")
        child.log_params({"lr": 0.1 / (j + 1)})
        child.log("accuracy", 0.7 + j / 20)
        child.complete()
    parent.complete()
    out.runs["sweep"] = parent.id
    src = home / "pipeline-src"
    src.mkdir(exist_ok=True)
    (src / "prep.py").write_text("print('prepared')\n")
    published = Pipeline(ws, [PythonScriptStep("prep", "prep.py", src)]).publish("nightly")
    Schedule.create(ws, "nightly", published.id, "scheduled", cron="0 3 * * *").disable()
    ws.flush()
    return out


def _train_step(batch: list[int]) -> None:
    shape = (len(batch), 4)
    raise ValueError(f"expected a batch of shape (32, 4), got {shape}")


class LiveServer:
    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from cumulo.server.app import create_app

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the studio server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Page:
    """A browser tab that records JavaScript errors and takes screenshots."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on(
            "console",
            lambda msg: self.errors.append(f"console: {msg.text}") if msg.type == "error" else None,
        )

    def open(self, path: str) -> Any:
        self.page.goto(self.base + path)
        self.page.wait_for_selector("body[data-ready=true]")
        return self.page

    def shot(self, name: str, full_page: bool = False) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path
