import math

import pytest

from cumulo.core import validation
from cumulo.core.errors import (
    HTTP_STATUS,
    CumuloError,
    InvalidInput,
    InvalidPath,
    InvalidState,
    from_code,
)
from cumulo.core.status import RunStatus, check_transition, parse_status


@pytest.mark.parametrize("name", ["a", "team-1", "my_ws", "x" * 64])
def test_good_workspace_names(name: str) -> None:
    assert validation.workspace_name(name) == name


@pytest.mark.parametrize("name", ["", "Upper", "-lead", "a b", "x" * 65, "a/b", None, 3])
def test_bad_workspace_names(name: object) -> None:
    with pytest.raises(InvalidInput):
        validation.workspace_name(name)


@pytest.mark.parametrize("key", ["loss", "val/loss", "a.b-c_d e", "x" * 250])
def test_good_keys(key: str) -> None:
    assert validation.key(key) == key


@pytest.mark.parametrize("key", ["", "x" * 251, "a\nb", "/abs", "a/../b", "semi;colon", 1])
def test_bad_keys(key: object) -> None:
    with pytest.raises(InvalidInput):
        validation.key(key)


def test_metric_values_are_numbers_and_specials_survive() -> None:
    assert math.isnan(validation.metric_value("m", float("nan")))
    assert validation.metric_value("m", float("-inf")) == float("-inf")
    assert validation.metric_value("m", 3) == 3.0
    for bad in ("1.0", True, None, [1], {"a": 1}):
        with pytest.raises(InvalidInput, match="must be a number"):
            validation.metric_value("m", bad)


def test_value_length_limits() -> None:
    validation.param_value("x" * validation.MAX_PARAM_VALUE)
    with pytest.raises(InvalidInput, match="limit is 6000"):
        validation.param_value("x" * (validation.MAX_PARAM_VALUE + 1))
    with pytest.raises(InvalidInput, match="limit is 8000"):
        validation.tag_value("x" * (validation.MAX_TAG_VALUE + 1))
    with pytest.raises(InvalidInput, match="limit is 500"):
        validation.experiment_name("e" * 501)


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../x", "a/../../b", "a/..", "C:/x", "a\\b", "a\x00b", "~/x", ""]
)
def test_artifact_paths_that_escape_are_refused(path: str) -> None:
    with pytest.raises(InvalidPath):
        validation.artifact_path(path)


def test_artifact_paths_are_normalised() -> None:
    assert validation.artifact_path("outputs//model.pkl") == "outputs/model.pkl"
    assert validation.artifact_path("./a/./b") == "a/b"
    assert validation.artifact_path("", allow_root=True) == ""


def test_status_transitions() -> None:
    check_transition(RunStatus.QUEUED, RunStatus.PREPARING)
    check_transition(RunStatus.RUNNING, RunStatus.COMPLETED)
    check_transition(RunStatus.COMPLETED, RunStatus.RUNNING)  # resume, as MLflow allows
    with pytest.raises(InvalidState, match="cannot move to Queued"):
        check_transition(RunStatus.COMPLETED, RunStatus.QUEUED)
    with pytest.raises(InvalidState):
        check_transition(RunStatus.FINALIZING, RunStatus.RUNNING)
    assert parse_status("running") is RunStatus.RUNNING
    assert parse_status("CancelRequested") is RunStatus.CANCEL_REQUESTED
    with pytest.raises(InvalidState, match="Unknown run status"):
        parse_status("bogus")


def test_every_error_code_has_an_http_status_and_round_trips() -> None:
    def subclasses(cls: type[CumuloError]) -> list[type[CumuloError]]:
        return [cls, *(s for c in cls.__subclasses__() for s in subclasses(c))]

    for cls in subclasses(CumuloError):
        assert cls.code in HTTP_STATUS
        if cls.__module__ != "cumulo.core.errors" and "code" not in vars(cls):
            continue  # a client-side refinement (the SDK's NotHere) travels as its parent
        rebuilt = from_code(cls.code, "msg")
        assert type(rebuilt) is cls and rebuilt.message == "msg"


def test_huge_steps_and_timestamps_are_refused() -> None:
    with pytest.raises(InvalidInput, match="64 bits"):
        validation.step(1e30)
    with pytest.raises(InvalidInput, match="64 bits"):
        validation.step(2**63)
    with pytest.raises(InvalidInput, match="64 bits"):
        validation.timestamp_ms(1e30)
    assert validation.step(3.0) == 3
