"""Code snapshots: the source folder of a job, packed, content-addressed and restorable.

Packing and unpacking only: what a client sends and an agent unpacks, with no store.

What is packed: every file under the source folder except what ``.cumuloignore``
(or, when there is none, ``.gitignore``) excludes, in gitignore syntax, and
always ``.git/``, ``__pycache__/``, ``*.pyc``, ``.venv/`` and
``.ipynb_checkpoints/``. Ignored folders are not walked at all, so a large
ignored data folder costs nothing.

The snapshot's id is the SHA-256 of its manifest (each file's path, executable
bit and SHA-256), so the same code is stored once, as
``<workspace>/snapshots/<id>.zip`` in the artifact store (``services/snapshots.py``).
Over ``SNAPSHOT_MAX_BYTES`` (300 MiB; ``settings.snapshot_max_mb`` changes it) or
``SNAPSHOT_MAX_FILES`` files, the error lists the largest files and how to ignore them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cumulo.core import validation
from cumulo.core.errors import InvalidInput, InvalidPath, NotFound, PayloadTooLarge
from cumulo.core.jobs import SNAPSHOT_MAX_BYTES, SNAPSHOT_MAX_FILES

if TYPE_CHECKING:
    import pathspec

ALWAYS_IGNORED = [".git/", "__pycache__/", "*.py[cod]", ".venv/", ".ipynb_checkpoints/"]
IGNORE_FILES = (".cumuloignore", ".gitignore")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class _Entry:
    path: str  # POSIX, relative to the source folder
    full: Path
    size: int
    executable: bool


def ignore_spec(root: Path) -> tuple[pathspec.PathSpec[Any], str | None]:
    # Loaded here: a process that only unpacks or reads snapshots never matches ignore rules.
    import pathspec

    lines = list(ALWAYS_IGNORED)
    used = None
    for name in IGNORE_FILES:
        file = root / name
        if file.is_file():
            lines += file.read_text(errors="replace").splitlines()
            used = name
            break
    return pathspec.GitIgnoreSpec.from_lines(lines), used


def collect(source: str | Path) -> list[_Entry]:
    """The files a snapshot of ``source`` holds, sorted, ignored folders never walked."""
    root = Path(source).expanduser()
    if not root.is_dir():
        raise NotFound(f"Source directory {str(source)!r} does not exist or is not a folder.")
    root = root.resolve()
    spec, _ = ignore_spec(root)
    out: list[_Entry] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        rel_dir = Path(folder).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirs[:] = sorted(
            d
            for d in dirs
            if not spec.match_file(f"{rel_dir}{d}/") and not os.path.islink(os.path.join(folder, d))
        )
        for name in sorted(files):
            rel = f"{rel_dir}{name}"
            if spec.match_file(rel):
                continue
            full = Path(folder) / name
            try:
                info = full.stat()  # follows a link to a file; a broken link is skipped
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            if full.is_symlink() and root not in full.resolve().parents:
                continue  # a link to a file outside the folder is not part of the code
            out.append(_Entry(rel, full, info.st_size, bool(info.st_mode & stat.S_IXUSR)))
    return sorted(out, key=lambda e: e.path)


def check_limits(entries: list[_Entry], root: str | Path, limit: int = SNAPSHOT_MAX_BYTES) -> None:
    total = sum(e.size for e in entries)
    if total <= limit and len(entries) <= SNAPSHOT_MAX_FILES:
        return
    largest = sorted(entries, key=lambda e: -e.size)[:10]
    listing = "\n".join(f"  {_mib(e.size):>10}  {e.path}" for e in largest)
    folders: dict[str, int] = {}
    for e in entries:
        if "/" in e.path:
            top = e.path.split("/", 1)[0] + "/"
            folders[top] = folders.get(top, 0) + e.size
    hint = [p for p, _ in sorted(folders.items(), key=lambda kv: -kv[1])[:2]]
    hint += [e.path for e in largest[:2] if "/" not in e.path]
    what = (
        f"{_mib(total)} in {len(entries)} files"
        if total > limit
        else f"{len(entries)} files (limit {SNAPSHOT_MAX_FILES})"
    )
    raise PayloadTooLarge(
        f"The snapshot of {root} is {what}; the limit is {_mib(limit)} and "
        f"{SNAPSHOT_MAX_FILES} files (raise the size with CUMULO_SNAPSHOT_MAX_MB).\n"
        f"Largest files:\n{listing}\n"
        "Leave data, checkpoints and virtual environments out of the code folder, or list "
        "them in a .cumuloignore file (gitignore syntax) in the source directory, e.g.:\n"
        + "\n".join(f"  {h}" for h in hint or ["data/"])
    )


def manifest_hash(items: list[tuple[str, bool, str]]) -> str:
    """The snapshot id: SHA-256 over sorted (path, executable, content hash)."""
    digest = hashlib.sha256()
    for path, executable, content in sorted(items):
        digest.update(f"{path}\0{int(executable)}\0{content}\n".encode())
    return digest.hexdigest()


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def pack(
    source: str | Path, dest: Path, max_bytes: int = SNAPSHOT_MAX_BYTES
) -> tuple[str, list[dict[str, object]]]:
    """Write the snapshot zip of ``source`` to ``dest``; returns its id and file list."""
    entries = collect(source)
    check_limits(entries, source, max_bytes)
    items, files = [], []
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for e in entries:
            items.append((e.path, e.executable, _file_hash(e.full)))
            files.append({"path": e.path, "size": e.size})
            info = zipfile.ZipInfo(e.path, date_time=_ZIP_TIME)
            info.external_attr = (0o755 if e.executable else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(e.full, "rb") as src, zf.open(info, "w") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)
    return manifest_hash(items), files


def read_zip(
    path: Path, max_bytes: int = SNAPSHOT_MAX_BYTES
) -> tuple[str, list[dict[str, object]]]:
    """Check an uploaded snapshot zip and compute its id from what it holds."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"The snapshot is not a zip file: {exc}") from exc
    items: list[tuple[str, bool, str]] = []
    files: list[dict[str, object]] = []
    total = 0
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            validation.artifact_path(info.filename)
            total += info.file_size
            if total > max_bytes or len(files) >= SNAPSHOT_MAX_FILES:
                raise PayloadTooLarge(
                    f"The snapshot holds more than {_mib(max_bytes)} or "
                    f"{SNAPSHOT_MAX_FILES} files; ignore data files with .cumuloignore."
                )
            h = hashlib.sha256()
            with zf.open(info) as fh:
                while chunk := fh.read(1024 * 1024):
                    h.update(chunk)
            executable = bool((info.external_attr >> 16) & stat.S_IXUSR)
            items.append((info.filename, executable, h.hexdigest()))
            files.append({"path": info.filename, "size": info.file_size})
    return manifest_hash(items), sorted(files, key=lambda f: str(f["path"]))


def extract(zip_path: Path | IO[bytes], dest: Path) -> Path:
    """Unpack a snapshot into ``dest`` (no entry may leave it), keeping executable bits."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            rel = validation.artifact_path(info.filename.rstrip("/"))
            target = (root / rel).resolve()
            if root not in target.parents:
                raise InvalidPath(f"Snapshot entry {info.filename!r} leads outside {dest}.")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)
            if (info.external_attr >> 16) & stat.S_IXUSR:
                target.chmod(0o755)
    return dest


def git_properties(source: str | Path) -> dict[str, str]:
    """Commit, branch and dirty state of the git checkout holding ``source``, if any."""
    git = shutil.which("git")
    if git is None:
        return {}

    def _git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                [git, "-C", str(source), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = _git("rev-parse", "HEAD")
    if not commit:
        return {}
    props = {"git.commit": commit}
    branch = _git("rev-parse", "--abbrev-ref", "HEAD")
    if branch and branch != "HEAD":
        props["git.branch"] = branch
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
    if status is not None:
        props["git.dirty"] = "true" if status else "false"
    remote = _git("config", "--get", "remote.origin.url")
    if remote and "@" not in remote:  # never record credentials embedded in a URL
        props["git.repository"] = remote
    return props


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"
