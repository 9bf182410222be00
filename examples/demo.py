"""The main job: train a few models, track them, and find the best run.

Runs on the embedded default (SQLite + a local folder under $CUMULO_HOME or
~/.cumulo); nothing else needs to be running.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from rich.console import Console
from rich.table import Table

from cumulo import Experiment, Workspace
from train import train

console = Console()


def main() -> None:
    ws = Workspace.create("demo", exist_ok=True)
    exp = Experiment(ws, "digits-sgd")
    console.print(f"Workspace [bold]{ws.name}[/bold] at {ws.location}")
    scratch = Path(tempfile.mkdtemp(prefix="cumulo-demo-"))
    for alpha in (1e-1, 1e-2, 1e-3, 1e-4):
        with exp.start_logging(display_name=f"alpha={alpha:g}", tags={"demo": "tracking"}) as run:
            accuracy = train(run, alpha=alpha, epochs=15, outputs=scratch / run.id)
        console.print(f"  run #{run.number} {run.display_name}: accuracy {accuracy:.4f}")

    best = next(exp.get_runs(filter="tags.demo = 'tracking'", order_by="metrics.accuracy DESC"))
    metrics = best.get_metrics()
    table = Table(title=f"Best run of {exp.name!r} by accuracy")
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("run", f"#{best.number} {best.display_name} ({best.id})")
    table.add_row("accuracy (last epoch)", f"{metrics['accuracy'][-1]:.4f}")
    table.add_row("f1_macro", f"{metrics['f1_macro']:.4f}")
    table.add_row("params", ", ".join(f"{k}={v}" for k, v in best.get_params().items()))
    table.add_row("files", ", ".join(best.get_file_names()))
    console.print(table)
    console.print(f"Workspace data lives in {ws.location}")
    console.print(
        f"Try: cumulo run list {exp.name} -w {ws.name} --order-by 'metrics.accuracy DESC'"
    )


if __name__ == "__main__":
    main()
