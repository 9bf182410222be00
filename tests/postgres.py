"""A PostgreSQL server from the machine's binaries (Debian's ``postgresql``), in a
temporary folder: for the tests' fixtures, the several-hosts test and the benchmarks."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def pg_tool(name: str) -> str:
    for folder in PG_BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"PostgreSQL binary {name!r} not found; install the postgresql package.")
    return found


@contextlib.contextmanager
def local_postgres(
    port: int,
    listen: Sequence[str] = ("127.0.0.1",),
    trust_subnet: str | None = None,
    max_connections: int = 200,
) -> Iterator[str]:
    """A server listening on ``listen`` (its URL names the last address); no fsync.

    ``trust_subnet`` lets clients of that subnet in without a password, as loopback is.
    """
    root = Path(tempfile.mkdtemp(prefix="cumulo-pg-"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    initdb = [*as_user, pg_tool("initdb"), "-D", str(data), "-A", "trust", "-U", "cumulo"]
    subprocess.run(initdb, check=True, capture_output=True)
    if trust_subnet:
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {trust_subnet} trust\n")
    options = (
        f"-p {port} -k {root} -c listen_addresses={','.join(listen)} -c fsync=off "
        f"-c max_connections={max_connections}"
    )
    pg_ctl = [*as_user, pg_tool("pg_ctl"), "-D", str(data)]
    subprocess.run(
        [*pg_ctl, "-l", str(root / "log"), "-w", "-o", options, "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://cumulo@{listen[-1]}:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
