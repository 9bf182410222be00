"""The command line describes itself: a version, and a description for every option."""

from __future__ import annotations

import shlex
from typing import Any

from typer.testing import CliRunner

from cumulo import __version__
from cumulo.cli.main import COMMANDS, app, load


def _all() -> list[tuple[list[str], Any]]:
    """Every command, each group loaded (the top level loads them when they run)."""
    found = []
    for name in COMMANDS:
        found += _commands(load(name), [name])
    return found


def _commands(command: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    if hasattr(command, "commands"):
        found = []
        for name, sub in command.commands.items():
            found += _commands(sub, [*path, name])
        return found
    return [(path, command)]


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"cumulo {__version__}"


def test_every_option_is_described() -> None:
    commands = _all()
    assert len(commands) > 30
    bare = [
        f"cumulo {' '.join(path)} {p.opts[0]}"
        for path, command in commands
        for p in command.params
        if getattr(p, "param_type_name", "") == "option" and not p.help and not p.hidden
    ]
    assert bare == []


def test_every_command_shows_an_example_that_it_accepts() -> None:
    """Each example's options are the command's own (so no example rots)."""
    wrong = []
    for path, command in _all():
        if path[0] in ("dataset", "datastore", "pipeline", "schedule", "server"):
            continue
        line = next(
            (ln for ln in (command.help or "").splitlines() if ln.strip().startswith("Example:")),
            None,
        )
        if line is None:
            wrong.append(f"cumulo {' '.join(path)}: no example")
            continue
        words = shlex.split(line.split("Example:", 1)[1])
        assert words[: len(path) + 1] == ["cumulo", *path], line
        known = {o for p in command.params for o in getattr(p, "opts", [])}
        for word in words[len(path) + 1 :]:
            if word == "--":
                break
            if word.startswith("-") and word.split("=")[0] not in known:
                wrong.append(f"cumulo {' '.join(path)}: {word} is not an option")
    assert wrong == []
