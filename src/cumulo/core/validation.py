"""Value rules for everything a user can name or send.

Limits (at least MLflow's, see docs/limits.md):
workspace names 1-64 chars of ``a-z 0-9 - _``; experiment names up to 500 chars;
metric, param, tag and property keys up to 250 chars of letters, digits and
``_ - . space /``; param values up to 6,000 chars; tag and property values up to
8,000 chars; artifact paths relative, without ``..`` segments, up to 1,024 chars.
Names hold no control, zero-width or text-direction characters, and artifact
paths no control or text-direction characters (see ``hidden_character``).
"""

from __future__ import annotations

import math
import posixpath
import re
import unicodedata
from numbers import Real
from typing import Any

from cumulo.core.errors import InvalidInput, InvalidPath

MAX_WORKSPACE_NAME = 64
MAX_EXPERIMENT_NAME = 500
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_DISPLAY_NAME = 250
MAX_RUN_ID = 32
MAX_ARTIFACT_PATH = 1024
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_WORKSPACE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_KEY_RE = re.compile(r"^[\w\-. /]+$")

# Characters that hide part of a name or make it pass for another: control
# characters, text-direction controls (they show "txt.exe" for "exe.txt"),
# zero-width characters, the byte-order mark and Unicode's line separators.
_CONTROLS = "\x00-\x1f\x7f-\x9f"
_DIRECTION = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_INVISIBLE = "\u200b-\u200d\u2060\ufeff\u2028\u2029"
_HIDDEN_IN_NAME = re.compile(f"[{_CONTROLS}{_DIRECTION}{_INVISIBLE}]")
# File names keep zero-width joiners (emoji sequences, Persian words use them).
_HIDDEN_IN_PATH = re.compile(f"[{_CONTROLS}{_DIRECTION}]")
# Control characters have no Unicode name: the common ones by their ASCII names.
_CONTROL_NAMES = {
    0x00: "NULL",
    0x09: "CHARACTER TABULATION",
    0x0A: "LINE FEED",
    0x0D: "CARRIAGE RETURN",
    0x1B: "ESCAPE",
    0x7F: "DELETE",
}


def hidden_character(text: str, *, path: bool = False) -> str | None:
    """The first character of ``text`` a reader cannot see, as ``"U+202E RIGHT-TO-LEFT
    OVERRIDE at position 3"`` (1-based), or None when there is none."""
    found = (_HIDDEN_IN_PATH if path else _HIDDEN_IN_NAME).search(text)
    if found is None:
        return None
    code = ord(found.group())
    name = unicodedata.name(found.group(), "") or _CONTROL_NAMES.get(code, "CONTROL CHARACTER")
    return f"U+{code:04X} {name} at position {found.start() + 1}"


def visible_name(text: str, what: str) -> str:
    """``text`` unless it holds a character that hides or disguises part of it."""
    problem = hidden_character(text)
    if problem is not None:
        raise InvalidInput(
            f"Invalid {what} {text!r}: it contains {problem}; names may not contain control, "
            "zero-width or text-direction characters."
        )
    return text


def fits_int64(number: int | float) -> bool:
    """Whether a number is a 64-bit integer's value.

    A float at -2**63 does not count: JSON parsers read every integer a little
    below -2**63 as that float, so it stands for no one number.
    """
    if isinstance(number, float):
        return -(2.0**63) < number < 2.0**63
    return INT64_MIN <= number <= INT64_MAX


def workspace_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidInput("A workspace name must be a non-empty string.")
    visible_name(name, "workspace name")
    if len(name) > MAX_WORKSPACE_NAME or not _WORKSPACE_RE.match(name):
        raise InvalidInput(
            f"Invalid workspace name {name!r}: use 1-{MAX_WORKSPACE_NAME} lowercase letters, "
            "digits, '-' or '_', starting with a letter or digit."
        )
    return name


def experiment_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("An experiment name must be a non-empty string.")
    if len(name) > MAX_EXPERIMENT_NAME:
        raise InvalidInput(
            f"Experiment name is {len(name)} characters long; the limit is {MAX_EXPERIMENT_NAME}."
        )
    return visible_name(name, "experiment name")


def run_id_reference(value: Any) -> str:
    """A run id another record names (a model version's run, a logged model's source run).

    Like MLflow, the run is not looked up: it may live on another tracking server.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_RUN_ID:
        raise InvalidInput(f"A run id is a string of 1 to {MAX_RUN_ID} characters, got {value!r}.")
    return value


def display_name(name: Any) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise InvalidInput("A run display name must be a string.")
    if len(name) > MAX_DISPLAY_NAME:
        raise InvalidInput(f"Run display name is longer than {MAX_DISPLAY_NAME} characters.")
    return visible_name(name, "run display name")


def key(value: Any, what: str = "metric") -> str:
    """Metric, param, tag and property keys: MLflow's rules."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"A {what} name must be a non-empty string, got {value!r}.")
    if len(value) > MAX_KEY:
        raise InvalidInput(f"{what.capitalize()} name {value[:40]!r}... is longer than {MAX_KEY}.")
    visible_name(value, f"{what} name")
    if not _KEY_RE.match(value):
        raise InvalidInput(
            f"Invalid {what} name {value!r}: use letters, digits, '_', '-', '.', ' ' and '/'."
        )
    if value.startswith("/") or ".." in value.split("/"):
        raise InvalidInput(f"Invalid {what} name {value!r}: no leading '/' and no '..' part.")
    return value


def metric_value(name: str, value: Any) -> float:
    """Numbers only; NaN and +/-inf are kept faithfully."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidInput(
            f"Metric {name!r} got {type(value).__name__} {value!r}; a metric value must be a "
            "number (use log_list, log_row or log_table for other values)."
        )
    return float(value)


def step(value: Any) -> int:
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise InvalidInput(f"A metric step must be an integer, got {value!r}.")
    if not fits_int64(value):
        raise InvalidInput(f"Metric step {value!r} does not fit in 64 bits.")
    return int(value)


def timestamp_ms(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidInput(f"A timestamp must be milliseconds since the epoch, got {value!r}.")
    if value < 0:
        raise InvalidInput(f"A timestamp must not be negative, got {value!r}.")
    if not fits_int64(value):
        raise InvalidInput(f"Timestamp {value!r} does not fit in 64 bits.")
    return int(value)


def text_value(value: Any, limit: int, what: str) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        raise InvalidInput(f"{what} is {len(text)} characters long; the limit is {limit}.")
    return text


def param_value(value: Any) -> str:
    return text_value(value, MAX_PARAM_VALUE, "Param value")


def tag_value(value: Any) -> str:
    return text_value(value, MAX_TAG_VALUE, "Tag value")


def artifact_path(path: Any, *, allow_root: bool = False) -> str:
    """A relative POSIX path inside a run's artifact folder, normalised.

    Rejects absolute paths, drive letters, backslashes, control and
    text-direction characters and any ``..`` part, so no path a user passes can
    leave its workspace or pass for another file.
    """
    if not isinstance(path, str):
        raise InvalidPath(f"An artifact path must be a string, got {path!r}.")
    if path in ("", ".", "/") and allow_root:
        return ""
    if not path:
        raise InvalidPath("An artifact path must not be empty.")
    if len(path) > MAX_ARTIFACT_PATH:
        raise InvalidPath(f"Artifact path is longer than {MAX_ARTIFACT_PATH} characters.")
    problem = hidden_character(path, path=True)
    if problem is not None:
        raise InvalidPath(
            f"Invalid artifact path {path!r}: it contains {problem}; paths may not contain "
            "control or text-direction characters."
        )
    if "\\" in path:
        raise InvalidPath(f"Artifact path {path!r} contains a backslash; use '/' between folders.")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path) or path.startswith("~"):
        raise InvalidPath(f"Artifact path {path!r} is absolute; give a path relative to the run.")
    parts = path.split("/")
    if ".." in parts:
        raise InvalidPath(f"Artifact path {path!r} contains '..'; it must stay inside the run.")
    normal = posixpath.normpath(path)
    if normal in (".", "") and not allow_root:
        raise InvalidPath(f"Artifact path {path!r} names no file.")
    return "" if normal == "." else normal
