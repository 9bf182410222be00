"""Every code block of README.md and docs/**/*.md runs as written, so none can rot.

One test per page (its id is the page's path). A page's blocks run in order, as
a reader would run them, following these conventions (docs/contributing-docs.md
gives them to writers; tests/docs/snippets.py implements them):

- ```` ```python ```` blocks run in one namespace per page, in a fresh
  ``CUMULO_HOME`` and a fresh working folder per page (also ``HOME``).
- ```` ```bash ```` blocks run whole in bash in that folder, with this interpreter's
  ``bin`` first on ``PATH``; the variables it sets and ``cd`` carry on to later blocks.
  ``cumulo server ...`` lines are replaced by a server the test starts over the
  page's home (on a free port: the page's ``127.0.0.1:5000`` is rewritten to it);
  ``postgresql://cumulo:...@db:5432/cumulo`` becomes a fresh database on the
  tests' PostgreSQL server.
- A block with a title (```` ```python title="train.py" ````) is written to that
  file in the page's folder instead of being run.
- Blocks without a language, ``text``/``console`` output and untitled data
  (``yaml``, ``json``, ``toml``, ``sql``) are shown, not run.
- ``<!-- not-run: reason -->`` right before a block skips it; the reason is
  required, and the test prints them with the page's count of run, written,
  shown and not-run blocks.

A page whose blocks submit jobs, sweeps or pipelines, deploy, or start a server,
a cluster or a database is marked ``slow``. Environments are built once for the
module. The README's scripts are the ones it links in ``examples/`` (copied into
its folder); other pages write their own with titled blocks. Some pages'
results are checked further below.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import free_port, start_cumulo_server, stop_cumulo_server
from tests.docs.snippets import (
    Block,
    PageRunner,
    is_heavy,
    needs_database,
    needs_server,
    parse,
    unknown_languages,
)

ROOT = Path(__file__).parents[2]


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def blocks_of(page: Path) -> list[Block]:
    return parse(page.read_text(), page_id(page))


def _param(page: Path) -> Any:
    marks = [pytest.mark.slow] if is_heavy(blocks_of(page)) else []
    return pytest.param(page, id=page_id(page), marks=marks)


@pytest.fixture(scope="module")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envs")


# ------------------------------------------------------------ page set-ups
def _fresh_database(server_url: str) -> str:
    """A new database on the tests' PostgreSQL server, as a plain libpq URL
    (``pg_dump`` reads it too; Cumulo picks its driver itself)."""
    import uuid

    import sqlalchemy

    name = f"docs_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    base = server_url.replace("postgresql+psycopg://", "postgresql://")
    return f"{base.rsplit('/', 1)[0]}/{name}"


def _readme_scripts(folder: Path) -> None:
    """The README names a training script, an entry script and a pipeline's steps
    (``src/train.py``, ``serve/score.py``, ``pipeline/``) and links them in ``examples/``."""
    (folder / "src").mkdir()
    shutil.copy(ROOT / "examples" / "train.py", folder / "src" / "train.py")
    shutil.copytree(ROOT / "examples" / "serve", folder / "serve")
    shutil.copytree(ROOT / "examples" / "pipeline", folder / "pipeline")


SETUP: dict[str, Callable[[Path], None]] = {"README.md": _readme_scripts}


# ------------------------------------------------------------- extra checks
def _readme(ns: dict[str, Any], out: str) -> None:
    endpoint = ns["endpoint"]
    assert endpoint.traffic == {"blue": 90, "green": 10}
    assert ns["best"].get_metrics()["accuracy"][-1] > 0.5
    endpoint.delete()


def _from_azureml(ns: dict[str, Any], out: str) -> None:
    assert "cpu-cluster (pool) is ready" in out
    assert "['cpu-cluster', 'local'] {} {} {}" in out
    assert "Run.log_confusion_matrix is a name of the cloud service's SDK" in out


def _from_mlflow(ns: dict[str, Any], out: str) -> None:
    assert "{'lr': '0.1'} [1.0, 0.5, 0.3333333333333333]" in out.splitlines()


def _sweeps(ns: dict[str, Any], out: str) -> None:
    lines = out.splitlines()
    best = next(i for i, line in enumerate(lines) if line.startswith("best: {'"))
    assert len([x for x in lines[best + 1 : best + 4] if x[:1].isdigit()]) == 3  # the top three
    assert "Completed, 6 of 6 trials ended" in " ".join(out.split())  # cumulo sweep submit
    assert ns["sweep"].get_pareto_front()
    assert ns["model"].name == "iris"


def _datasets(ns: dict[str, Any], out: str) -> None:
    assert (Path("local") / "dir" / "train.csv").is_file()  # train.download("local/dir")
    assert "spend" in out  # the drift report of version 2, whose spend doubled
    assert "churn:1" in out  # the refused delete names the model that keeps the data
    assert ns["report"]["drift"] is True  # the endpoint was sent older customers
    ns["endpoint"].delete()


def _jobs(ns: dict[str, Any], out: str) -> None:
    assert ns["run"].get_status() == "Completed"
    assert ns["run"].get_metrics()["loss"] == [0.1, 0.05, 0.1 / 3]


def _pipelines(ns: dict[str, Any], out: str) -> None:
    assert ns["run"].get_status() == "Completed"
    assert [step["status"] for step in ns["run"].get_steps()] == ["Completed"] * 3


CHECKS: dict[str, Callable[[dict[str, Any], str], None]] = {
    "docs/jobs.md": _jobs,
    "docs/pipelines.md": _pipelines,
    "docs/datasets.md": _datasets,
    "docs/sweeps.md": _sweeps,
    "README.md": _readme,
    "docs/from-azureml.md": _from_azureml,
    "docs/from-mlflow.md": _from_mlflow,
}


# ------------------------------------------------------------------- tests
def test_every_block_is_in_a_language_the_runner_knows() -> None:
    unknown = [u for page in pages() for u in unknown_languages(blocks_of(page))]
    assert not unknown, "run them (python, bash), title them, or mark them shown (text)"


def test_every_not_run_block_says_why() -> None:
    marked = [b for page in pages() for b in blocks_of(page) if b.not_run is not None]
    assert all(b.not_run for b in marked), [b.where() for b in marked if not b.not_run]
    for block in marked:
        print(f"not run: {block.where()}: {block.not_run}")


def test_the_checks_name_pages_that_exist() -> None:
    assert set(CHECKS) <= {page_id(p) for p in pages()}


def test_the_readme_lists_every_command_group() -> None:
    import re

    from cumulo.cli.main import COMMANDS

    text = " ".join((ROOT / "README.md").read_text().split())
    listing = text.split("`cumulo --help` lists every group: ", 1)[1].split(";", 1)[0]
    assert re.findall(r"`([\w-]+)`", listing) == list(COMMANDS)


@pytest.mark.timeout(900)  # environment builds, jobs, sweeps, pipelines and endpoints
@pytest.mark.parametrize("page", [_param(p) for p in pages()])
def test_page_runs_as_written(
    page: Path,
    env_cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    blocks = blocks_of(page)
    folder = tmp_path / "page"
    folder.mkdir()
    real_home = Path.home()
    monkeypatch.setenv(
        "PIP_CACHE_DIR", os.environ.get("PIP_CACHE_DIR", str(real_home / ".cache" / "pip"))
    )
    monkeypatch.setenv(
        "UV_CACHE_DIR", os.environ.get("UV_CACHE_DIR", str(real_home / ".cache" / "uv"))
    )
    monkeypatch.setenv(
        "MPLCONFIGDIR", os.environ.get("MPLCONFIGDIR", str(real_home / ".config" / "matplotlib"))
    )
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(folder)
    # Pages build the same environments: once for the whole module.
    monkeypatch.setenv("CUMULO_ENV_CACHE", str(env_cache))
    setup = SETUP.get(page_id(page))
    if setup is not None:
        setup(folder)
    database = None
    if needs_database(blocks):
        database = _fresh_database(request.getfixturevalue("postgres_url"))
    server = None
    url = None
    if needs_server(blocks):
        port = free_port()
        home = Path(os.environ["CUMULO_HOME"])
        server = start_cumulo_server(home, port, env={"CUMULO_ENV_CACHE": str(env_cache)})
        url = f"http://127.0.0.1:{port}"
    try:
        runner = PageRunner(folder, url, monkeypatch, database)
        tally = runner.run(blocks)
        print(f"{page_id(page)}: {tally}")
        for reason in tally.not_run:
            print(f"  not run: {reason}")
        check = CHECKS.get(page_id(page))
        if check is not None:
            check(runner.namespace, runner.output.getvalue())
    finally:
        if server is not None:
            stop_cumulo_server(server)
