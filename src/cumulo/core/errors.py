"""One error tree for the whole product.

    CumuloError (INTERNAL_ERROR)
    ├── InvalidInput (INVALID_PARAMETER_VALUE)      bad names, values, filters, paths
    │   ├── InvalidPath (INVALID_PATH)              artifact paths that escape
    │   ├── PayloadTooLarge (PAYLOAD_TOO_LARGE)     request bodies, snapshots
    │   └── EnvironmentBuildError (ENVIRONMENT_BUILD_FAILED)  the installer's own message
    ├── NotFound (RESOURCE_DOES_NOT_EXIST)
    ├── AlreadyExists (RESOURCE_ALREADY_EXISTS)
    ├── Conflict (RESOURCE_CONFLICT)                immutable values, concurrent changes
    ├── InvalidState (INVALID_STATE)                status transitions, writes to deleted runs
    ├── Unauthenticated (UNAUTHENTICATED)
    ├── PermissionDenied (PERMISSION_DENIED)
    ├── Unavailable (TEMPORARILY_UNAVAILABLE)       store or server not reachable
    ├── InsufficientStorage (INSUFFICIENT_STORAGE)  the disk or quota holding files is full
    ├── ConfigError (CONFIG_ERROR)                  missing workspace config, missing extras
    └── RunFailed (RUN_FAILED)                      wait_for_completion(raise_on_error=True)

Every error carries a stable ``code``; transports map codes to HTTP statuses in
one table (``HTTP_STATUS``) and rebuild the same class on the client (``from_code``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class CumuloError(Exception):
    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error_code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(CumuloError):
    code = "INVALID_PARAMETER_VALUE"


class InvalidPath(InvalidInput):
    code = "INVALID_PATH"


class PayloadTooLarge(InvalidInput):
    code = "PAYLOAD_TOO_LARGE"


class EnvironmentBuildError(InvalidInput):
    """Creating the venv or installing into it failed; the message carries the installer's
    own words (uv, or pip)."""

    code = "ENVIRONMENT_BUILD_FAILED"


class NotFound(CumuloError):
    code = "RESOURCE_DOES_NOT_EXIST"


class AlreadyExists(CumuloError):
    code = "RESOURCE_ALREADY_EXISTS"


class Conflict(CumuloError):
    code = "RESOURCE_CONFLICT"


class InvalidState(CumuloError):
    code = "INVALID_STATE"


class Unauthenticated(CumuloError):
    code = "UNAUTHENTICATED"


class PermissionDenied(CumuloError):
    code = "PERMISSION_DENIED"


class Unavailable(CumuloError):
    code = "TEMPORARILY_UNAVAILABLE"


class InsufficientStorage(CumuloError):
    """The storage is full (no space, quota reached): retrying cannot help until space is freed."""

    code = "INSUFFICIENT_STORAGE"


class ConfigError(CumuloError):
    code = "CONFIG_ERROR"


class RunFailed(CumuloError):
    """``wait_for_completion(raise_on_error=True)`` on a run that did not complete."""

    code = "RUN_FAILED"


def _all_subclasses(cls: type[CumuloError]) -> list[type[CumuloError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


_BY_CODE: dict[str, type[CumuloError]] = {c.code: c for c in _all_subclasses(CumuloError)}

HTTP_STATUS: dict[str, int] = {
    "INTERNAL_ERROR": 500,
    "INVALID_PARAMETER_VALUE": 400,
    "INVALID_PATH": 400,
    "PAYLOAD_TOO_LARGE": 413,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "RESOURCE_ALREADY_EXISTS": 409,
    "RESOURCE_CONFLICT": 409,
    "INVALID_STATE": 409,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "TEMPORARILY_UNAVAILABLE": 503,
    "INSUFFICIENT_STORAGE": 507,
    "CONFIG_ERROR": 400,
    "ENVIRONMENT_BUILD_FAILED": 400,
    "RUN_FAILED": 409,
}


def from_code(code: str, message: str, details: dict[str, Any] | None = None) -> CumuloError:
    """Rebuild the error a server raised from its JSON body."""
    cls = _BY_CODE.get(code, CumuloError)
    return cls(message, **(details or {}))
