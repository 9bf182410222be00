"""Run MLflow's own tracking-server tests against ``cumulo server`` and against MLflow.

    python benchmarks/mlflow_suite/run.py CHECKOUT [--side both] [--in-scope] [-k EXPR]

The checkout is MLflow's source tree (only its ``tests/`` folder is read). The tests are
copied into a work folder, away from the checkout's ``mlflow/`` package, so that they drive
the MLflow client installed in this environment. Two runs of the same tests:

- ``mlflow``: the control, the tests exactly as MLflow runs them (their fixtures serve
  MLflow's own FastAPI app, the one ``mlflow server`` serves, on a SQLite store);
- ``cumulo``: the same tests with ``cumulo_plugin`` loaded, which replaces only
  ``ServerThread`` in ``tests/tracking/integration_test_utils.py`` by a fresh
  ``cumulo server`` process per test.

Only the SQLite variants run (MLflow skips its file-store variants itself). Each test is
put in an area; the areas Cumulo does not serve are listed in docs/mlflow-compatibility.md.
The summary (per side, per area) is printed and written as JSON beside the JUnit reports.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TEST_FILES = ("tests/tracking/test_rest_tracking.py", "tests/tracking/test_model_registry.py")

# Areas Cumulo does not serve, by test name; everything else is tracking, registry,
# logged models or artifacts (in scope). First match wins.
OUT_OF_SCOPE: tuple[tuple[str, str], ...] = (
    # These start `mlflow server` themselves or call its handlers in-process: they test
    # MLflow's server on both sides, whatever ServerThread serves.
    (
        "not served by the server under test",
        r"^test_create_model_version_with_validation_regex$|"
        r"^test_get_metric_history_bulk_calls_optimized_impl_when_expected$",
    ),
    ("GraphQL", r"graphql"),
    ("traces and assessments", r"trace|span|assessment|otel"),
    ("issues API", r"issue"),
    (
        "GenAI evaluation datasets",
        r"evaluation_dataset|dataset_to_experiments|"
        r"dataset_from_experiments|dataset_experiment|idempotent_(add|remove)_experiments|"
        r"add_remove_experiments|add_multiple_experiments",
    ),
    ("scorers", r"scorer|online_scoring"),
    ("prompt lab", r"promptlab"),
    (
        "AI gateway and secrets",
        r"gateway|secret|endpoint|model_definition|provider|"
        r"list_models|fallback|budget|routing|guardrail",
    ),
    ("jobs and workspaces of MLflow's server", r"workspace|job"),
)
IN_SCOPE = "tracking, registry, logged models, artifacts"


def area_of(test_name: str) -> str:
    base = test_name.split("[", 1)[0]
    for area, pattern in OUT_OF_SCOPE:
        if re.search(pattern, base):
            return area
    return IN_SCOPE


def mlflow_versions(checkout: Path) -> tuple[str, str]:
    """(the checkout's version, the installed client's version)."""
    import mlflow

    text = (
        (checkout / "mlflow" / "version.py").read_text()
        if (checkout / "mlflow" / "version.py").exists()
        else ""
    )
    match = re.search(r'^VERSION = "([^"]+)"', text, re.M)
    return (match.group(1) if match else "unknown", mlflow.__version__)


def prepare(checkout: Path, work: Path) -> None:
    """Copy the checkout's tests/ into ``work`` (fresh) with a pytest config of its own."""
    if not (checkout / TEST_FILES[0]).exists():
        sys.exit(f"{checkout} has no {TEST_FILES[0]}: give the path of an MLflow checkout.")
    if (work / "tests").exists():
        shutil.rmtree(work / "tests")
    work.mkdir(parents=True, exist_ok=True)
    shutil.copytree(checkout / "tests", work / "tests", symlinks=True)
    # Only what the two files need of MLflow's pytest settings: no --strict-markers (the
    # markers are registered in MLflow's pyproject, which is not copied), no -x.
    (work / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:legacypath -p no:cacheprovider\n"
        "filterwarnings =\n    ignore::DeprecationWarning\n"
    )


def run_side(
    side: str, work: Path, out: Path, keyword: str | None, files: list[str], in_scope: bool
) -> Path:
    report = out / f"{side}.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-rN",
        "--tb=line",
        f"--junitxml={report}",
        "-o",
        "junit_family=xunit1",
        *files,
    ]
    if keyword:
        command += ["-k", keyword]
    env = dict(os.environ)
    paths = [str(work)]
    if side == "cumulo":
        command[3:3] = ["-p", "cumulo_plugin"]
        paths += [str(REPO / "src")]
    if in_scope:
        command[3:3] = ["-p", "in_scope_plugin"]
    paths.append(str(HERE))
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    print(f"== {side}: {' '.join(command[1:])}", flush=True)
    with open(out / f"{side}.log", "wb") as log:
        subprocess.run(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    return report


def outcomes(report: Path) -> dict[str, str]:
    """``file::test[param]`` -> passed, failed, error or skipped."""
    found: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('file') or case.get('classname')}::{case.get('name')}"
        children = {child.tag for child in case}
        outcome = (
            "failed"
            if "failure" in children
            else "error"
            if "error" in children
            else "skipped"
            if "skipped" in children
            else "passed"
        )
        # A test can report twice (a teardown error after a pass): the worse one stands.
        if found.get(name) in (None, "passed", "skipped"):
            found[name] = outcome
    return found


def summarise(sides: dict[str, dict[str, str]]) -> dict[str, object]:
    # A test every side skipped (MLflow's file-store variants) is no test of either.
    names = sorted(
        name
        for name in set().union(*(s.keys() for s in sides.values()))
        if any(found.get(name, "skipped") != "skipped" for found in sides.values())
    )
    areas: dict[str, dict[str, int]] = {}
    for name in names:
        area = area_of(name.split("::")[-1])
        row = areas.setdefault(area, {"tests": 0})
        row["tests"] += 1
        for side, found in sides.items():
            if found.get(name) == "passed":
                row[side] = row.get(side, 0) + 1
    summary: dict[str, object] = {"areas": areas}
    if "mlflow" in sides and "cumulo" in sides:
        summary["in_scope_passing_only_on_mlflow"] = [
            n
            for n in names
            if area_of(n.split("::")[-1]) == IN_SCOPE
            and sides["mlflow"].get(n) == "passed"
            and sides["cumulo"].get(n) != "passed"
        ]
        summary["passing_only_on_cumulo"] = [
            n for n in names if sides["cumulo"].get(n) == "passed" != sides["mlflow"].get(n)
        ]
    return summary


def print_table(summary: dict[str, object], sides: list[str]) -> None:
    areas = summary["areas"]
    assert isinstance(areas, dict)
    print(f"\n| area | tests | {' | '.join(f'pass on {s}' for s in sides)} |")
    print(f"|---|---|{'---|' * len(sides)}")
    total = {s: 0 for s in sides}
    for area in sorted(areas, key=lambda a: (a != IN_SCOPE, a)):
        row = areas[area]
        for s in sides:
            total[s] += row.get(s, 0)
        print(f"| {area} | {row['tests']} | {' | '.join(str(row.get(s, 0)) for s in sides)} |")
    print(
        f"| all | {sum(r['tests'] for r in areas.values())} | "
        f"{' | '.join(str(total[s]) for s in sides)} |"
    )
    for key in ("in_scope_passing_only_on_mlflow", "passing_only_on_cumulo"):
        if summary.get(key):
            print(f"\n{key}:")
            for name in summary[key]:  # type: ignore[union-attr]
                print(f"  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="an MLflow source checkout")
    parser.add_argument("--side", choices=("both", "cumulo", "mlflow"), default="both")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression (a subset)")
    parser.add_argument("--file", action="append", help="only this test file (repeatable)")
    parser.add_argument(
        "--in-scope", action="store_true", help=f"only the in-scope tests ({IN_SCOPE})"
    )
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "cumulo-mlflow-suite"
    )
    args = parser.parse_args()

    checkout = args.checkout.resolve()
    tree, client = mlflow_versions(checkout)
    print(f"MLflow tests from {checkout} (version {tree}); MLflow client {client}")
    prepare(checkout, args.work)
    out = args.work / "reports"
    out.mkdir(exist_ok=True)
    sides = ["mlflow", "cumulo"] if args.side == "both" else [args.side]
    found = {
        side: outcomes(
            run_side(
                side, args.work, out, args.keyword, args.file or list(TEST_FILES), args.in_scope
            )
        )
        for side in sides
    }
    summary = summarise(found)
    summary.update({"mlflow_tree_version": tree, "mlflow_client_version": client})
    (out / "summary.json").write_text(json.dumps({"summary": summary, "tests": found}, indent=1))
    print_table(summary, sides)
    print(f"\nreports: {out}")


if __name__ == "__main__":
    main()
