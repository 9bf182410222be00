"""Target kinds plug in: each declares its checks and capabilities, the scheduler asks those."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from tests.jobs.conftest import write_script

from cumulo import ComputeTarget, Experiment, ScriptRunConfig, Workspace
from cumulo.compute import REGISTRY, TargetType, kinds, register, target_type
from cumulo.compute.agent import AgentLink
from cumulo.compute.local import LocalBackend
from cumulo.core.errors import InvalidInput
from cumulo.services.scheduler import HTTP_LINK, STORE_LINK


def test_an_unknown_kind_names_the_registered_ones(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="Unknown compute target kind 'slurm'") as caught:
        ComputeTarget.create(ws, "hpc", {"kind": "slurm"})
    for kind in REGISTRY:
        assert kind in caught.value.message


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"kind": "local", "max_nodes": 2}, "takes no settings"),
        ({"kind": "pool", "max_nodes": 0}, "max_nodes must be an integer from 1 to 256"),
        ({"kind": "pool", "idle_seconds_before_scaledown": -1}, "must be a number >= 0"),
        ({"kind": "ray"}, "either address="),
        ({"kind": "ray", "address": "ray://x:10001"}, "must be the dashboard URL"),
        ({"kind": "ray", "managed": True, "num_cpus": 1.5}, "num_cpus must be an integer"),
    ],
)
def test_each_kind_checks_its_settings(ws: Workspace, config: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        ComputeTarget.create(ws, "t", config)


def test_settings_are_stored_with_their_defaults(ws: Workspace) -> None:
    pool = ComputeTarget.create(ws, "p", {"kind": "pool"})
    assert pool.config == {"max_nodes": 2, "idle_seconds_before_scaledown": 120.0}
    ray = ComputeTarget.create(ws, "r", {"kind": "ray", "managed": True})
    assert ray.config == {"address": None, "managed": True, "num_cpus": None, "num_gpus": None}


def test_capabilities_of_the_built_in_kinds() -> None:
    assert kinds(pulls_from_queue=True) == ["pool"]
    assert kinds(remote_agent=True) == ["ray", "ssh"]
    assert set(kinds(pulls_from_queue=False)) >= {"local", "ray"}
    ray = target_type("ray")
    assert ray.keeps_head and ray.serves_deployments and ray.on_delete is not None


def test_a_kind_registered_at_run_time_runs_jobs(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new kind is one declaration: its checks hold, and the scheduler dispatches its jobs."""

    def parse(config: dict[str, Any]) -> dict[str, Any]:
        label = config.get("label", "none")
        if not isinstance(label, str):
            raise InvalidInput("label must be a string.")
        return {"label": label}

    monkeypatch.setitem(REGISTRY, "labelled", "placeholder")  # restored after the test
    register(TargetType(kind="labelled", backend=LocalBackend, parse_config=parse))
    with pytest.raises(InvalidInput, match="label must be a string"):
        ComputeTarget.create(ws, "bad", {"kind": "labelled", "label": 3})
    target = ComputeTarget.create(ws, "mine", {"kind": "labelled", "label": "x"})
    assert (target.kind, target.config) == ("labelled", {"label": "x"})
    assert "labelled" in kinds(pulls_from_queue=False)

    write_script(tmp_path, "train.py", "print('on a new kind')\n")
    config = ScriptRunConfig(tmp_path, "train.py", compute_target="mine")
    run = Experiment(ws, "kinds").submit(config)
    details = run.wait_for_completion(show_output=False, raise_on_error=True, timeout=120)
    assert details["target"] == "mine"
    assert "on a new kind" in run.get_logs()


def test_a_module_that_declares_no_such_kind_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(REGISTRY, "odd", "cumulo.compute.local")
    with pytest.raises(Exception, match="declares no TARGET of kind 'odd'"):
        target_type("odd")
    assert "odd" not in kinds()


@pytest.mark.parametrize("name", [STORE_LINK, HTTP_LINK])
def test_the_links_the_scheduler_names_are_agent_links(name: str) -> None:
    """An agent loads its link by the name its job's environment gives: each one resolves."""
    module, _, attr = name.partition(":")
    assert issubclass(getattr(importlib.import_module(module), attr), AgentLink)
