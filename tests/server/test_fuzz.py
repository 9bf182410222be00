"""Fuzz the native API from its own OpenAPI description: no request may cause a 5xx.

Every operation under ``/api/v1`` gets requests that fit its schema (positive)
and requests that break it (negative). Three in four aim at a live workspace,
experiment and run, so fuzzed bodies reach the services, not only the router.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from cumulo.sdk.http import HttpTracking, HttpTransport

pytestmark = pytest.mark.slow

EXAMPLES = 20


@pytest.fixture(scope="module")
def target(cumulo_server_url: str) -> dict[str, Any]:
    transport = HttpTransport(cumulo_server_url)
    name = f"fuzz-{uuid.uuid4().hex[:6]}"
    transport.tracking.create_workspace(name)
    return {"url": cumulo_server_url, "t": transport.tracking, "ws": name}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_makes_a_server_error(target: dict[str, Any], mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{target['url']}/openapi.json")
    schema = schema.include(path_regex="^/api/v1/")
    turn = itertools.count()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures: list[str] = []

    def aim(case: Any) -> None:
        if not case.path_parameters or next(turn) % 4 == 0:
            return
        # A fresh experiment and run each time: fuzzed requests may delete them.
        transport: HttpTracking = target["t"]
        experiment = transport.create_experiment(target["ws"], uuid.uuid4().hex)
        run = transport.create_run(target["ws"], experiment.id)
        params = dict(case.path_parameters)
        if "workspace" in params:
            params["workspace"] = target["ws"]
        if "run_id" in params:
            params["run_id"] = run.id
        if "experiment_id" in params and next(turn) % 2:
            params["experiment_id"] = experiment.id
        case.path_parameters = params

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            aim(case)
            response = case.call(base_url=target["url"], timeout=60)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.query} {case.body!r:.300} "
                    f"-> {response.status_code}: {response.text[:300]}"
                )
            elif response.status_code >= 400:
                if response.text == "Invalid HTTP request received.":
                    return  # refused by the HTTP parser itself, before the app
                body = response.json()
                assert {"error_code", "message"} <= set(body), body

        try:
            check()
        except Unsatisfiable:
            # Nothing in this operation can be broken (no parameters, no body).
            assert mode == GenerationMode.NEGATIVE, operation.label
    assert not failures, "\n".join(failures)
