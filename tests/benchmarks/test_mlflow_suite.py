"""The MLflow-suite runner's bookkeeping: areas of tests, JUnit reports, the comparison.

The suite itself (MLflow's tests against both servers) is the opt-in ``make mlflow-suite``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# Loaded under a name of its own: benchmarks/run.py is another module named "run".
_SPEC = importlib.util.spec_from_file_location(
    "mlflow_suite_run", Path(__file__).resolve().parents[2] / "benchmarks/mlflow_suite/run.py"
)
assert _SPEC is not None and _SPEC.loader is not None
run = importlib.util.module_from_spec(_SPEC)
sys.modules["mlflow_suite_run"] = run
_SPEC.loader.exec_module(run)


def test_areas_by_test_name() -> None:
    assert run.area_of("test_log_batch_validation[sqlalchemy]") == run.IN_SCOPE
    assert run.area_of("test_create_and_query_registered_model_flow") == run.IN_SCOPE
    assert run.area_of("test_search_runs_graphql[sqlalchemy]") == "GraphQL"
    assert run.area_of("test_get_trace_handler[sqlalchemy-True]") == "traces and assessments"
    assert run.area_of("test_create_and_get_endpoint[sqlalchemy]") == "AI gateway and secrets"
    assert run.area_of("test_search_issues_by_status[sqlalchemy]") == "issues API"
    assert run.area_of("test_create_model_version_with_validation_regex") == (
        "not served by the server under test"
    )


def test_report_outcomes_and_comparison(tmp_path: Path) -> None:
    report = tmp_path / "r.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.tracking.test_rest_tracking" name="test_a[sqlalchemy]"/>'
        '<testcase classname="tests.tracking.test_rest_tracking" name="test_b[sqlalchemy]">'
        '<failure message="boom"/></testcase>'
        '<testcase classname="tests.tracking.test_rest_tracking" name="test_a[file]">'
        '<skipped message="FileStore"/></testcase>'
        '<testcase classname="tests.tracking.test_rest_tracking" name="test_c_graphql">'
        "</testcase>"
        '<testcase classname="tests.tracking.test_rest_tracking" name="test_c_graphql">'
        '<error message="teardown"/></testcase>'
        "</testsuite></testsuites>"
    )
    found = run.outcomes(report)
    key = "tests.tracking.test_rest_tracking::"
    assert found == {
        key + "test_a[sqlalchemy]": "passed",
        key + "test_b[sqlalchemy]": "failed",
        key + "test_a[file]": "skipped",
        key + "test_c_graphql": "error",  # a teardown error after a pass counts
    }
    mlflow = dict(found) | {key + "test_b[sqlalchemy]": "passed"}
    summary = run.summarise({"mlflow": mlflow, "cumulo": found})
    assert summary["in_scope_passing_only_on_mlflow"] == [key + "test_b[sqlalchemy]"]
    assert summary["areas"] == {
        run.IN_SCOPE: {"tests": 2, "mlflow": 2, "cumulo": 1},  # test_a[file]: skipped
        "GraphQL": {"tests": 1},
    }
