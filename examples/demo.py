"""The main job: track, register the data, train from it as jobs, sweep, run a pipeline
twice, compare, register, deploy, roll out, and trace the lineage from the data to the endpoint.

Everything runs on the embedded default: an SQLite database and a folder under
$CUMULO_HOME (or ~/.cumulo), local processes, and a `cumulo server` on this
machine over the same home. Nothing else needs to be running.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from cumulo import (  # noqa: E402
    BanditPolicy,
    ComputeTarget,
    Dataset,
    DeploymentConfig,
    Experiment,
    HyperDriveConfig,
    InferenceConfig,
    LocalPool,
    Model,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    RandomParameterSampling,
    ScriptRunConfig,
    Workspace,
    loguniform,
)
from cumulo.core.settings import default_home  # noqa: E402
from train import train  # noqa: E402

console = Console()
WORKSPACE = "demo"
# Every run of one demo invocation carries this tag, so reruns are compared apart.
SESSION = {"demo": time.strftime("%Y%m%d-%H%M%S")}


def step(title: str) -> None:
    console.rule(f"[bold]{title}")


def track_in_process() -> Experiment:
    """1. Interactive runs: the SDK writes straight into the embedded store."""
    step("1. Track runs from a script (embedded: SQLite + a local folder)")
    ws = Workspace.create(WORKSPACE, exist_ok=True)
    console.print(f"Workspace [bold]{ws.name}[/bold] at {ws.location}")
    exp = Experiment(ws, "digits-sgd")
    scratch = Path(tempfile.mkdtemp(prefix="cumulo-demo-"))
    for alpha in (1e-1, 1e-2, 1e-3):
        with exp.start_logging(
            display_name=f"alpha={alpha:g}", tags={**SESSION, "via": "SDK"}
        ) as run:
            accuracy = train(run, alpha=alpha, epochs=15, outputs=scratch / run.id)
        console.print(f"  run #{run.number} {run.display_name}: accuracy {accuracy:.4f}")
    return exp


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """2. A `cumulo server` over the same home: the team's shared entry point."""
    step("2. Start `cumulo server` over the same home")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(home / "demo-server.log", "ab")  # noqa: SIM115 - handed to the server process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cumulo.cli.main",
            "server",
            "--home",
            str(home),
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() - started > 60:
            raise SystemExit(f"cumulo server did not start; see {home / 'demo-server.log'}")
        time.sleep(0.1)
    console.print(f"Server ready at {url} in {time.monotonic() - started:.1f}s")
    return proc, url


def register_data(ws: Workspace) -> Any:
    """3. The training data as a versioned dataset: the same content is the same version."""
    step("3. Register the training data as a dataset")
    from sklearn.datasets import load_digits

    digits = load_digits(as_frame=True)
    folder = Path(tempfile.mkdtemp(prefix="cumulo-digits-"))
    digits.frame.to_csv(folder / "digits.csv", index=False)
    ds = Dataset.Tabular.from_delimited_files(folder).register(
        ws, "digits", description="scikit-learn's 8x8 digits, label last"
    )
    profile = ds.profile
    console.print(
        f"Dataset digits version {ds.version} ({ds.id[:12]}): {profile['rows']} rows, "
        f"{profile['columns']} columns; label {profile['column_profiles']['target']['distinct']} "
        "classes"
    )
    return ds


def submit_jobs(ws: Workspace, ds: Any) -> list[str]:
    """4. The training script as jobs on a managed pool, reading the dataset, logs live."""
    step("4. Submit the training script as jobs to a local pool")
    if "cpu-pool" not in ws.compute_targets:
        ComputeTarget.create(
            ws, "cpu-pool", LocalPool(max_nodes=2, idle_seconds_before_scaledown=60)
        )
    exp = Experiment(ws, "digits-sgd")
    runs = [
        exp.submit(
            ScriptRunConfig(
                HERE,
                "train.py",
                arguments=[
                    "--alpha",
                    alpha,
                    "--epochs",
                    15,
                    "--data",
                    ds.as_named_input("digits").as_download(),
                ],
                compute_target="cpu-pool",
            ),
            tags={**SESSION, "via": "job"},
        )
        for alpha in ("3e-3", "3e-4")
    ]
    for run in runs:
        console.print(f"[dim]── logs of job run #{run.number} ──[/dim]")
        run.wait_for_completion(show_output=True, raise_on_error=True)
    return [run.id for run in runs]


def sweep_alpha(ws: Workspace, ds: Any) -> None:
    """5. A small sweep over alpha on the pool; its best trial's model is registered."""
    step("5. Sweep alpha: four trials, two at a time, bandit early termination")
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(
            HERE,
            "train.py",
            arguments=["--epochs", 8, "--data", ds.as_named_input("digits").as_download()],
            compute_target="cpu-pool",
        ),
        hyperparameter_sampling=RandomParameterSampling({"alpha": loguniform(-10, -1)}, seed=3),
        policy=BanditPolicy(slack_factor=0.15, delay_evaluation=2),
        primary_metric_name="accuracy",
        max_total_runs=4,
        max_concurrent_runs=2,
    )
    started = time.monotonic()
    sweep = Experiment(ws, "digits-sweep").submit(config, tags=SESSION)
    sweep.wait_for_completion(show_output=False, raise_on_error=True)
    table = Table(title=f"Sweep #{sweep.number} in {time.monotonic() - started:.1f}s, best first")
    for column in ("trial", "status", "alpha", "accuracy"):
        table.add_column(column)
    for row in sweep.get_children_sorted_by_primary_metric():
        value = row["primary_metric"]
        table.add_row(
            str(row["number"]),
            row["status"],
            f"{float(row['hyperparameters']['alpha']):.2e}",
            f"{value:.4f}" if value is not None else "",
        )
    console.print(table)
    best = sweep.get_best_run_by_primary_metric()
    assert best is not None
    model = best.register_model("digits-sweep", model_path="outputs/model.pkl", tags=SESSION)
    console.print(f"Registered digits-sweep version {model.version} from trial run #{best.number}")


def digits_pipeline(ws: Workspace) -> Pipeline:
    """prepare -> train -> evaluate -> register, passing folders from step to step."""
    src = HERE / "pipeline"
    data, model, report = PipelineData("data"), PipelineData("model"), PipelineData("report")
    alpha = PipelineParameter("alpha", 1e-3)
    return Pipeline(
        ws,
        [
            PythonScriptStep("prepare", "prepare.py", src, ["--out", data], outputs=[data],
                             compute_target="cpu-pool"),
            PythonScriptStep("train", "train.py", src,
                             ["--data", data, "--alpha", alpha, "--model", model],
                             outputs=[model], compute_target="cpu-pool"),
            PythonScriptStep("evaluate", "evaluate.py", src,
                             ["--data", data, "--model", model, "--report", report],
                             outputs=[report], compute_target="cpu-pool"),
            PythonScriptStep("register", "register.py", src,
                             ["--model", model, "--report", report], compute_target="cpu-pool"),
        ],
    )  # fmt: skip


def run_pipeline(ws: Workspace) -> None:
    """6. A pipeline, then the same pipeline again: every unchanged step is reused."""
    step("6. A pipeline: prepare -> train -> evaluate -> register, run twice")
    exp = Experiment(ws, "digits-pipeline")
    for attempt in ("submitted", "submitted again, nothing changed"):
        started = time.monotonic()
        run = exp.submit(digits_pipeline(ws), tags=SESSION)
        run.wait_for_completion(show_output=False, raise_on_error=True)
        table = Table(title=f"Pipeline {attempt}: {time.monotonic() - started:.1f}s")
        for column in ("step", "status", "why it ran"):
            table.add_column(column)
        for s in run.get_steps():
            if s["state"] == "reused":
                status, why = "reused", f"nothing changed since run {s['reused_from'][:8]}"
            else:
                status, why = s["status"], s["reason"]
            table.add_row(s["name"], status, why)
        console.print(table)


def log_with_mlflow(url: str) -> None:
    """7. Existing MLflow code logs to Cumulo unchanged."""
    step("7. Log a run with the MLflow client")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    mlflow.set_tracking_uri(f"{url}/ws/{WORKSPACE}")
    mlflow.set_experiment("digits-sgd")
    with mlflow.start_run(run_name="mlflow-baseline", tags={**SESSION, "via": "MLflow"}) as active:
        mlflow.log_param("model", "majority-class")
        for epoch in range(3):
            mlflow.log_metric("accuracy", 0.1, step=epoch)
    console.print(f"MLflow run {active.info.run_id} logged through {url}/ws/{WORKSPACE}")


def show_best(ws: Workspace, url: str) -> list:  # type: ignore[type-arg]
    """8. One store for everything: SDK runs, job runs and MLflow runs side by side."""
    step("8. Compare every run and find the best")
    exp = Experiment(ws, "digits-sgd")
    runs = list(
        exp.get_runs(filter=f"tags.demo = '{SESSION['demo']}'", order_by="metrics.accuracy DESC")
    )
    table = Table(title=f"Runs of {exp.name!r}, best first")
    for column in ("#", "name", "logged by", "status", "accuracy"):
        table.add_column(column)
    for r in runs:
        by = r.info.tags.get("via", "")
        acc = r.info.metrics.get("accuracy")
        table.add_row(
            str(r.number), r.display_name, by, r.info.status, f"{acc.value:.4f}" if acc else ""
        )
    console.print(table)
    best = runs[0]
    console.print(f"Best run: #{best.number} {best.display_name}")
    console.print(f"Studio page of the best run: [link]{url}/ws/{ws.name}/runs/{best.id}[/link]")
    return runs


def deploy(ws: Workspace, runs: list, ds: Any) -> None:  # type: ignore[type-arg]
    """9. Register the best model, serve it with a key, roll out at 10% a second version:
    the best model trained from the registered dataset."""
    step("9. Register the best model, deploy it, roll out a second version")
    from sklearn.datasets import load_digits

    scoring = InferenceConfig(entry_script="score.py", source_directory=str(HERE / "serve"))
    with_model = [r for r in runs if "outputs/model.pkl" in r.get_file_names()]
    best = with_model[0]
    read = {r.id for r in ds.get_runs()}
    runner_up = next(r for r in with_model if r.id in read and r.id != best.id)
    blue = best.register_model("digits", model_path="outputs/model.pkl", tags={"stage": "champion"})
    blue.set_alias("champion")
    console.print(f"Registered digits version {blue.version} from run #{best.number}")
    endpoint = Model.deploy(
        ws, "digits", [blue], scoring, DeploymentConfig(replicas=1), overwrite=True
    )
    key, _ = endpoint.get_keys()
    digits = load_digits()
    rows, truth = digits.data[:5], [int(t) for t in digits.target[:5]]
    answer = httpx.post(
        endpoint.scoring_uri,
        json={"data": rows.tolist()},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    console.print(f"Scored 5 rows with the endpoint key: {answer.json()} (true labels: {truth})")
    green = runner_up.register_model("digits", model_path="outputs/model.pkl")
    if "green" in endpoint.deployments:  # the demo ran before: roll the new version in
        endpoint.update(deployment="green", models=[green], inference_config=scoring)
    else:
        endpoint.add_deployment("green", [green], scoring)
    endpoint.update_traffic({"blue": 90, "green": 10})
    console.print(f"Version {green.version} rolled out as 'green' with 10% of the traffic")
    console.print(f"Endpoint URL: [link]{endpoint.scoring_uri}[/link]")


def show_lineage(ds: Any) -> None:
    """10. From the data to what serves it: dataset -> runs that read it -> models -> endpoints."""
    step("10. Lineage: from the dataset to the endpoints that serve its models")
    graph = ds.get_lineage()
    nodes = {n["id"]: n for n in graph["nodes"]}
    after: dict[str, list[str]] = {}
    for edge in graph["edges"]:
        after.setdefault(edge["from"], []).append(edge["to"])

    def chains(node: str) -> list[list[str]]:
        nexts = after.get(node, [])
        return [[node]] if not nexts else [[node, *rest] for n in nexts for rest in chains(n)]

    root = next(n["id"] for n in graph["nodes"] if n["kind"] == "dataset")
    for chain in chains(root):
        if len(chain) > 2:  # runs that registered a model
            console.print(" → ".join(f"{nodes[n]['kind']} {nodes[n]['label']}" for n in chain))
    read = sum(1 for n in graph["nodes"] if n["kind"] == "run")
    console.print(f"{read} runs read digits:{ds.version}; `cumulo dataset show digits` lists them")


def show_audit(home: Path) -> None:
    """11. The server kept an audit log of every write: who, what, when, how it ended."""
    step("11. Who did what: the server's audit log")
    time.sleep(1.2)  # the server stores its entries once a second
    cli = [sys.executable, "-m", "cumulo.cli.main", "audit", "list", "--home", str(home)]
    subprocess.run([*cli, "--workspace", WORKSPACE, "--limit", "8"], check=True)
    console.print(
        "With `--auth token` each entry names the token used; owners read it in the studio "
        f"at /ws/{WORKSPACE}/audit."
    )


def main() -> None:
    home = default_home()
    home.mkdir(parents=True, exist_ok=True)
    track_in_process()
    server, url = start_server(home)
    try:
        ws = Workspace.connect(url, WORKSPACE)
        ds = register_data(ws)
        submit_jobs(ws, ds)
        sweep_alpha(ws, ds)
        run_pipeline(ws)
        log_with_mlflow(url)
        runs = show_best(ws, url)
        deploy(ws, runs, ds)
        show_lineage(ds)
        show_audit(home)
    finally:
        server.terminate()
        server.wait(timeout=30)
    step("Done")
    console.print(f"Workspace data lives in {home}")
    console.print(
        f"Open the studio again with: cumulo server --home {home}   then http://127.0.0.1:5000/ws/{WORKSPACE}"
    )


if __name__ == "__main__":
    main()
