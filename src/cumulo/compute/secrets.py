"""The server's sealing key: secrets stored encrypted at rest, under ``<home>/secret.key``.

Fernet (AES-128-CBC with HMAC-SHA256); the key file is made once, mode 0600,
by whichever process needs it first. Every server of a workspace needs the same
file. A sealed value reads ``sealed:fernet:<token>``. SSH machines' keys and
passwords and datastores' credentials are sealed with it; cryptography is
imported where it is used (the SSH supervisor runs without it).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from cumulo.core.errors import ConfigError
from cumulo.core.jobs import SEALED

SECRET_FILE = "secret.key"
FERNET = "fernet:"


def fernet_module() -> Any:
    try:
        from cryptography import fernet
    except ImportError as exc:
        raise ConfigError(
            "Sealing secrets needs cryptography: pip install 'cumulo[ssh]' (or 'cumulo[data]')."
        ) from exc
    return fernet


def _box(home: Path) -> Any:
    Fernet = fernet_module().Fernet
    path = home / SECRET_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process made it first
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
    return Fernet(path.read_bytes().strip())


def seal(text: str, home: Path) -> str:
    """``text`` encrypted under the server's key."""
    token: bytes = _box(home).encrypt(text.encode())
    return SEALED + FERNET + token.decode()


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED + FERNET)


def unseal(value: str, home: Path, what: str) -> str:
    """The plain text of a sealed value; ``what`` ("the SSH machine's secrets") names it."""
    InvalidToken = fernet_module().InvalidToken
    prefix = SEALED + FERNET
    if not value.startswith(prefix):
        raise ConfigError(
            f"{what[:1].upper()}{what[1:]} are not sealed as expected; set them again."
        )
    try:
        return str(_box(home).decrypt(value[len(prefix) :].encode()).decode())
    except InvalidToken:
        raise ConfigError(
            f"{what[:1].upper()}{what[1:]} were sealed under another key than "
            f"{home / SECRET_FILE} (every server of a workspace needs the same file); "
            "copy that file from the server that sealed them, or set them again."
        ) from None
