"""The artifact store: files of runs (outputs, logs, images, snapshots) on fsspec.

A local folder by default, ``s3://bucket/prefix`` through s3fs. Every key is
``<workspace>/<area>/<id>/<relative path>``; relative paths are validated in
``core.validation.artifact_path`` and, on a local folder, resolved paths are
checked to stay under the root so a link cannot lead outside it.

Storage faults become domain errors here, in one place (``storage_errors``): a
full disk or quota is ``InsufficientStorage`` (507), a path in the way of
another is ``Conflict``, any other OS error ``Unavailable`` (503). A write that
fails leaves nothing behind: no partial file, no folder it created.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import posixpath
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from cumulo.core import validation
from cumulo.core.entities import FileInfo
from cumulo.core.errors import (
    Conflict,
    CumuloError,
    InsufficientStorage,
    InvalidPath,
    NotFound,
    Unavailable,
)

CHUNK = 1024 * 1024

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_IN_THE_WAY = frozenset({errno.EEXIST, errno.ENOTDIR, errno.EISDIR})


def storage_error(exc: OSError, action: str) -> CumuloError:
    """The domain error for an OS error met while ``action`` ("store 'a.txt'", ...)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in _FULL:
        return InsufficientStorage(
            f"The storage is full: could not {action} ({reason}). Free some space or raise "
            "the quota, then send it again."
        )
    if exc.errno in _IN_THE_WAY:
        return Conflict(f"Could not {action}: a file or folder is in the way ({reason}).")
    return Unavailable(f"The storage could not {action}: {reason}. Try again later.")


@contextlib.contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Raise OS errors of the storage as the domain errors the transports answer with."""
    try:
        yield
    except OSError as exc:
        raise storage_error(exc, action) from exc


class ArtifactStore:
    def __init__(
        self,
        root: str,
        s3_endpoint_url: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.root = root.rstrip("/")
        self.is_local = "://" not in root or root.startswith("file://")
        self._fs: Any = None
        if self.is_local:
            self.root = str(Path(root.removeprefix("file://")).expanduser().resolve())
            Path(self.root).mkdir(parents=True, exist_ok=True)
        else:
            import fsspec  # a remote root's filesystem is made (its options checked) at once

            protocol = root.split("://", 1)[0]
            options: dict[str, Any] = dict(storage_options or {})
            if protocol == "s3" and s3_endpoint_url:
                options["client_kwargs"] = {"endpoint_url": s3_endpoint_url}
            self._fs = fsspec.filesystem(protocol, **options)
            self.root = root.split("://", 1)[1].rstrip("/")

    @property
    def fs(self) -> Any:
        """The fsspec filesystem; a local root's is made on first use (importing fsspec
        costs a server's start more than the rest of the artifact store)."""
        if self._fs is None:
            import fsspec

            self._fs = fsspec.filesystem("file")
        return self._fs

    # -------------------------------------------------------------- paths
    def _path(self, prefix: str, rel: str = "") -> str:
        rel = validation.artifact_path(rel, allow_root=True)
        full = posixpath.join(self.root, prefix, rel) if rel else posixpath.join(self.root, prefix)
        if self.is_local:
            real = os.path.realpath(full)
            if real != self.root and not real.startswith(self.root + os.sep):
                raise InvalidPath(f"Artifact path {rel!r} leads outside the workspace.")
        return full

    def uri(self, prefix: str, rel: str = "") -> str:
        path = self._path(prefix, rel)
        return path if self.is_local else f"{self.fs.protocol[0]}://{path}"

    # ------------------------------------------------------------- writing
    def put_file(self, prefix: str, rel: str, local_path: str | Path) -> int:
        local = Path(local_path)
        if not local.is_file():
            raise NotFound(f"File {str(local)!r} does not exist or is not a regular file.")
        with open(local, "rb") as src:
            return self.put_stream(prefix, rel, src)

    def put_stream(self, prefix: str, rel: str, src: IO[bytes]) -> int:
        """Copy a stream in chunks (never whole in memory); the file appears complete or not.

        On any error (storage full, the client gone) nothing is left behind: not
        the partial file, nor the folders made for it.
        """
        dest = self._path(prefix, rel)
        if not rel:
            raise InvalidPath("An artifact needs a file name.")
        action = f"store {rel!r}"
        parent = posixpath.dirname(dest)
        made = self._missing_folders(parent)
        tmp = dest + ".partial" if self.is_local else dest
        try:
            with storage_errors(action):
                self.fs.makedirs(parent, exist_ok=True)
            written = self._write(tmp, src, action)
            if self.is_local:
                with storage_errors(action):
                    os.replace(tmp, dest)
        except BaseException:
            self._remove_partial(tmp, made)
            raise
        return written

    def _write(self, path: str, src: IO[bytes], action: str) -> int:
        """Copy ``src`` into a new file at ``path``; storage errors only for the writes."""
        with storage_errors(action):
            out = self.fs.open(path, "wb")
        written = 0
        try:
            while chunk := src.read(CHUNK):
                with storage_errors(action):
                    out.write(chunk)
                written += len(chunk)
        except BaseException:
            _abandon(out)
            raise
        with storage_errors(action):
            out.close()  # a full disk may only show when the last bytes are flushed
        return written

    def _missing_folders(self, folder: str) -> list[str]:
        """The folders a write into ``folder`` would create, deepest first (local only)."""
        if not self.is_local:
            return []  # an object store has no folders to leave behind
        missing = []
        while folder != self.root and not os.path.isdir(folder):
            missing.append(folder)
            folder = os.path.dirname(folder)
        return missing

    def _remove_partial(self, tmp: str, made: list[str]) -> None:
        if not self.is_local:
            return
        with contextlib.suppress(OSError):  # never written, or its folder is a file
            os.unlink(tmp)
        for folder in made:
            try:
                os.rmdir(folder)
            except OSError:
                break  # another upload put a file there meanwhile: keep it

    def move(self, prefix: str, src: str, dest: str) -> None:
        """Rename a stored file (atomic on a local folder; copy and delete on an object store)."""
        src_path, dest_path = self._path(prefix, src), self._path(prefix, dest)
        action = f"store {dest!r}"
        with storage_errors(action):
            self.fs.makedirs(posixpath.dirname(dest_path), exist_ok=True)
            if self.is_local:
                os.replace(src_path, dest_path)
            else:
                self.fs.mv(src_path, dest_path)

    def put_bytes(self, prefix: str, rel: str, data: bytes) -> int:
        import io

        return self.put_stream(prefix, rel, io.BytesIO(data))

    # ------------------------------------------------------------- reading
    def open(self, prefix: str, rel: str) -> IO[bytes]:
        path = self._path(prefix, rel)
        with storage_errors(f"read {rel!r}"):
            if not rel or not self.fs.isfile(path):
                raise NotFound(f"Artifact {rel!r} does not exist.")
            stream: IO[bytes] = self.fs.open(path, "rb")
            return stream

    def iter_bytes(self, prefix: str, rel: str) -> Iterator[bytes]:
        with self.open(prefix, rel) as fh:
            while chunk := fh.read(CHUNK):
                yield chunk

    def size(self, prefix: str, rel: str) -> int:
        path = self._path(prefix, rel)
        with storage_errors(f"read {rel!r}"):
            if not self.fs.isfile(path):
                raise NotFound(f"Artifact {rel!r} does not exist.")
            return int(self.fs.size(path))

    def exists(self, prefix: str, rel: str) -> bool:
        return bool(self.fs.exists(self._path(prefix, rel)))

    def list(self, prefix: str, rel: str = "", recursive: bool = False) -> list[FileInfo]:
        """Files and folders under ``rel``, paths relative to the prefix, sorted."""
        base = self._path(prefix)
        path = self._path(prefix, rel)
        with storage_errors(f"list {rel or '/'!r}"):
            return _listing(self.fs, base, path, recursive)

    def find(self, prefix: str, pattern: str) -> builtins.list[FileInfo]:
        """The files a glob pattern (``data/*.csv``), a file or a folder names, sorted."""
        pattern = validation.artifact_path(pattern, allow_root=True)
        base = self._path(prefix)
        with storage_errors(f"list {pattern or '/'!r}"):
            full = self._path(prefix, pattern)
            if any(c in pattern for c in "*?["):
                found = [p for p in self.fs.glob(full) if self.fs.isfile(p)]
            elif self.fs.isfile(full):
                found = [full]
            else:
                found = self.fs.find(full) if self.fs.exists(full) else []
            return [
                FileInfo(_rel(base, p), False, int(self.fs.size(p)))
                for p in sorted(found)
                if not p.endswith(".partial")
            ]

    def get_file(self, prefix: str, rel: str, local_path: str | Path) -> Path:
        dest = Path(local_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with (
            storage_errors(f"download {rel!r}"),
            self.open(prefix, rel) as src,
            open(dest, "wb") as out,
        ):
            shutil.copyfileobj(src, out, CHUNK)
        return dest

    def delete(self, prefix: str, rel: str = "") -> None:
        path = self._path(prefix, rel)
        with storage_errors(f"delete {rel or prefix!r}"):
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)


def _listing(fs: Any, base: str, path: str, recursive: bool) -> list[FileInfo]:
    if not fs.exists(path) or fs.isfile(path):
        return []
    out: list[FileInfo] = []
    if recursive:
        for full in sorted(fs.find(path)):
            if full.endswith(".partial"):
                continue
            out.append(FileInfo(_rel(base, full), False, int(fs.size(full))))
        return out
    for entry in fs.ls(path, detail=True):
        name = entry["name"]
        if name.endswith(".partial"):
            continue
        is_dir = entry["type"] == "directory"
        out.append(FileInfo(_rel(base, name), is_dir, None if is_dir else int(entry["size"])))
    return sorted(out, key=lambda f: f.path)


def _abandon(out: Any) -> None:
    """Close a half-written file without committing it (an object store drops the upload)."""
    from fsspec.spec import AbstractBufferedFile  # loaded already: ``out`` came from fsspec

    if isinstance(out, AbstractBufferedFile):
        with contextlib.suppress(Exception):
            out.discard()
        out.closed = True  # closing would upload what was buffered so far
        return
    with contextlib.suppress(OSError):
        out.close()


def _rel(base: str, full: str) -> str:
    base = base.rstrip("/") + "/"
    return full[len(base) :] if full.startswith(base) else full.split(base, 1)[-1]
