"""What a scoring request can fail with, as HTTP statuses and MLflow-style JSON bodies."""

from __future__ import annotations

import orjson


class ScoringError(Exception):
    """A request the model cannot answer; ``status`` is the HTTP status to send."""

    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> bytes:
        return orjson.dumps({"error_code": self.code, "message": self.message})


class BadInput(ScoringError):
    """Malformed JSON, a wrong shape, missing columns: the caller's fault (400)."""


class SchemaMismatch(BadInput):
    code = "INVALID_PARAMETER_VALUE"


class UnsupportedMediaType(ScoringError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class ModelLoadError(Exception):
    """The model or entry script could not be loaded; the replica reports it and exits."""
