"""Run statuses and the transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum

from cumulo.core.errors import InvalidState


class RunStatus(StrEnum):
    NOT_STARTED = "NotStarted"
    QUEUED = "Queued"
    PREPARING = "Preparing"
    STARTING = "Starting"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    CANCEL_REQUESTED = "CancelRequested"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def is_active(self) -> bool:
        return self not in TERMINAL


S = RunStatus
TERMINAL = frozenset({S.COMPLETED, S.FAILED, S.CANCELED})
_ENDINGS = {S.COMPLETED, S.FAILED, S.CANCELED, S.CANCEL_REQUESTED}

_ALLOWED: dict[RunStatus, frozenset[RunStatus]] = {
    S.NOT_STARTED: frozenset({S.QUEUED, S.PREPARING, S.STARTING, S.RUNNING} | _ENDINGS),
    S.QUEUED: frozenset({S.PREPARING, S.STARTING, S.RUNNING} | _ENDINGS),
    S.PREPARING: frozenset({S.STARTING, S.RUNNING} | _ENDINGS),
    S.STARTING: frozenset({S.RUNNING, S.FINALIZING} | _ENDINGS),
    S.RUNNING: frozenset({S.FINALIZING} | _ENDINGS),
    S.FINALIZING: frozenset({S.COMPLETED, S.FAILED, S.CANCELED}),
    S.CANCEL_REQUESTED: frozenset({S.FINALIZING, S.COMPLETED, S.FAILED, S.CANCELED}),
    # A finished run may be resumed (MLflow's start_run(run_id=...)), nothing else.
    S.COMPLETED: frozenset({S.RUNNING}),
    S.FAILED: frozenset({S.RUNNING}),
    S.CANCELED: frozenset({S.RUNNING}),
}


def parse_status(value: str) -> RunStatus:
    for status in RunStatus:
        if status.value.lower() == value.lower() or status.name.lower() == value.lower():
            return status
    allowed = ", ".join(s.value for s in RunStatus)
    raise InvalidState(f"Unknown run status {value!r}; expected one of: {allowed}.")


def can_move(current: RunStatus, new: RunStatus) -> bool:
    """Whether ``current -> new`` is allowed (the same status always is: a no-op)."""
    return current == new or new in _ALLOWED[current]


def check_transition(current: RunStatus, new: RunStatus) -> None:
    """Raise InvalidState unless ``current -> new`` is allowed (same status is a no-op)."""
    if not can_move(current, new):
        allowed = ", ".join(sorted(s.value for s in _ALLOWED[current])) or "none"
        raise InvalidState(
            f"A run in status {current.value} cannot move to {new.value}; "
            f"allowed next statuses: {allowed}."
        )
