"""The artifact store: files of runs (outputs, logs, images, snapshots) on fsspec.

A local folder by default, ``s3://bucket/prefix`` through s3fs. Every key is
``<workspace>/<area>/<id>/<relative path>``; relative paths are validated in
``core.validation.artifact_path`` and, on a local folder, resolved paths are
checked to stay under the root so a link cannot lead outside it.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import fsspec

from cumulo.core import validation
from cumulo.core.entities import FileInfo
from cumulo.core.errors import InvalidPath, NotFound

CHUNK = 1024 * 1024


class ArtifactStore:
    def __init__(self, root: str, s3_endpoint_url: str | None = None) -> None:
        self.root = root.rstrip("/")
        self.is_local = "://" not in root or root.startswith("file://")
        if self.is_local:
            self.root = str(Path(root.removeprefix("file://")).expanduser().resolve())
            Path(self.root).mkdir(parents=True, exist_ok=True)
            self.fs: Any = fsspec.filesystem("file")
        else:
            protocol = root.split("://", 1)[0]
            options: dict[str, Any] = {}
            if protocol == "s3" and s3_endpoint_url:
                options["client_kwargs"] = {"endpoint_url": s3_endpoint_url}
            self.fs = fsspec.filesystem(protocol, **options)
            self.root = root.split("://", 1)[1].rstrip("/")

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
        """Copy a stream in chunks (never whole in memory); the file appears complete or not."""
        dest = self._path(prefix, rel)
        if not rel:
            raise InvalidPath("An artifact needs a file name.")
        parent = posixpath.dirname(dest)
        self.fs.makedirs(parent, exist_ok=True)
        tmp = dest + ".partial" if self.is_local else dest
        written = 0
        try:
            with self.fs.open(tmp, "wb") as out:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
            if self.is_local:
                os.replace(tmp, dest)
        except BaseException:
            if self.is_local and os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return written

    def put_bytes(self, prefix: str, rel: str, data: bytes) -> int:
        import io

        return self.put_stream(prefix, rel, io.BytesIO(data))

    # ------------------------------------------------------------- reading
    def open(self, prefix: str, rel: str) -> IO[bytes]:
        path = self._path(prefix, rel)
        if not rel or not self.fs.isfile(path):
            raise NotFound(f"Artifact {rel!r} does not exist.")
        return self.fs.open(path, "rb")

    def iter_bytes(self, prefix: str, rel: str) -> Iterator[bytes]:
        with self.open(prefix, rel) as fh:
            while chunk := fh.read(CHUNK):
                yield chunk

    def size(self, prefix: str, rel: str) -> int:
        path = self._path(prefix, rel)
        if not self.fs.isfile(path):
            raise NotFound(f"Artifact {rel!r} does not exist.")
        return int(self.fs.size(path))

    def exists(self, prefix: str, rel: str) -> bool:
        return bool(self.fs.exists(self._path(prefix, rel)))

    def list(self, prefix: str, rel: str = "", recursive: bool = False) -> list[FileInfo]:
        """Files and folders under ``rel``, paths relative to the prefix, sorted."""
        base = self._path(prefix)
        path = self._path(prefix, rel)
        if not self.fs.exists(path) or self.fs.isfile(path):
            return []
        out: list[FileInfo] = []
        if recursive:
            for full in sorted(self.fs.find(path)):
                if full.endswith(".partial"):
                    continue
                out.append(FileInfo(_rel(base, full), False, int(self.fs.size(full))))
            return out
        for entry in self.fs.ls(path, detail=True):
            name = entry["name"]
            if name.endswith(".partial"):
                continue
            is_dir = entry["type"] == "directory"
            out.append(FileInfo(_rel(base, name), is_dir, None if is_dir else int(entry["size"])))
        return sorted(out, key=lambda f: f.path)

    def get_file(self, prefix: str, rel: str, local_path: str | Path) -> Path:
        dest = Path(local_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self.open(prefix, rel) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
        return dest

    def delete(self, prefix: str, rel: str = "") -> None:
        path = self._path(prefix, rel)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)


def _rel(base: str, full: str) -> str:
    base = base.rstrip("/") + "/"
    return full[len(base) :] if full.startswith(base) else full.split(base, 1)[-1]
