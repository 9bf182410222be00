"""What a scoring request can fail with, as HTTP statuses and MLflow-style bodies."""

from __future__ import annotations

from collections.abc import Callable

import orjson


class ScoringError(Exception):
    """A request the model cannot answer; ``status`` is the HTTP status to send."""

    status = 400
    code = "BAD_REQUEST"
    media_type = "application/json"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> bytes:
        return orjson.dumps({"error_code": self.code, "message": self.message})


class BadInput(ScoringError):
    """Malformed JSON, a wrong shape, missing columns: the caller's fault (400)."""


class Refusal(ScoringError):
    """An answer given as it was composed (MLflow's own error bodies, text or JSON)."""

    def __init__(self, status: int, body: bytes, media_type: str, message: str = "") -> None:
        super().__init__(message or body.decode("utf-8", "replace"))
        self.status = status
        self.media_type = media_type
        self._body = body

    def body(self) -> bytes:
        return self._body


class ModelLoadError(Exception):
    """The model or entry script could not be loaded; the replica reports it and exits."""


class LoadFirst(Exception):
    """The request needs ``load()`` to have run first (slow): the server runs it off its loop."""

    def __init__(self, load: Callable[[], object]) -> None:
        super().__init__("load first")
        self.load = load
