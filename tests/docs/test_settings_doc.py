"""docs/settings.md cannot fall behind the Settings object: every field has a row that
names its environment variable, that variable really sets the field, and every
``CUMULO_*`` variable the settings module reads is in the table."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from cumulo.core import settings as settings_module
from cumulo.core.settings import Settings

DOC = Path(__file__).parents[2] / "docs" / "settings.md"
FIELDS = [f.name for f in dataclasses.fields(Settings)]
# A value of each field's type that differs from its default; settings that take one of
# a few words have their own.
SAMPLES = {
    "Path": "/srv/cumulo-sample",
    "Path | None": "/srv/cumulo-sample",
    "str": "sample",
    "str | None": "http://sample.example:9000",
    "int": "7",
    "float": "7.5",
    "bool": "0",
    "tuple[str, ...]": "http://a.example:5000,http://b.example:5000",
    "tuple[int, ...] | None": "0,2",
}
CHOICES = {
    "database_url": "postgresql://cumulo@db.example/cumulo",
    "artifact_root": "s3://bucket/prefix",
    "auth": "token",
    "env_installer": "pip",
}


def rows() -> dict[str, list[str]]:
    """The table's rows by setting name: each row's cells."""
    found = {}
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`(\w+)`", cells[0]) if line.startswith("|") else None
        if name:
            found[name[1]] = cells
    return found


def variable(name: str) -> str:
    """The environment variable the table gives for a setting (the first one named)."""
    found = re.search(r"CUMULO_\w+", rows()[name][1])
    assert found, f"docs/settings.md's row for {name!r} names no CUMULO_* variable"
    return found[0]


def test_every_setting_has_a_row_with_its_variable_and_default() -> None:
    table = rows()
    missing = [name for name in FIELDS if name not in table]
    assert not missing, f"docs/settings.md has no row for {missing}"
    for name in FIELDS:
        cells = table[name]
        assert len(cells) == 4 and all(cells), f"row {name!r} needs a variable, default and use"
        variable(name)
    assert not set(table) - set(FIELDS), "docs/settings.md lists settings that do not exist"


@pytest.mark.parametrize("name", FIELDS)
def test_the_documented_variable_sets_the_setting(name: str) -> None:
    field = next(f for f in dataclasses.fields(Settings) if f.name == name)
    sample = CHOICES.get(name) or SAMPLES[str(field.type)]
    default = getattr(Settings.load(environ={}), name)
    try:
        loaded = getattr(Settings.load(environ={variable(name): sample}), name)
    except ValueError as exc:
        pytest.fail(f"{exc} Give {name!r} a valid value in CHOICES.")
    assert loaded != default, f"{variable(name)}={sample} does not change {name}"


def test_every_variable_the_settings_read_is_documented() -> None:
    read = set(re.findall(r"CUMULO_\w+", inspect.getsource(settings_module)))
    assert read, "the settings module reads no CUMULO_* variable"
    text = DOC.read_text()
    assert not {v for v in read if f"`{v}`" not in text}, "add them to docs/settings.md"
