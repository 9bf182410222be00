"""Stored code snapshots: packed once per distinct content, kept in the artifact store.

Packing, the limits and unpacking are ``compute/snapshots.py``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import IO

from cumulo.compute.snapshots import extract, pack, read_zip
from cumulo.core.jobs import SNAPSHOT_MAX_BYTES, SnapshotInfo
from cumulo.store.artifacts import ArtifactStore, storage_errors
from cumulo.store.jobs import JobStore


class SnapshotService:
    def __init__(
        self, store: JobStore, artifacts: ArtifactStore, max_bytes: int = SNAPSHOT_MAX_BYTES
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.max_bytes = max_bytes  # the largest snapshot taken or received

    @staticmethod
    def _prefix(workspace: str) -> str:
        return f"{workspace}/snapshots"

    def take(self, workspace: str, source: str | Path) -> SnapshotInfo:
        """Pack ``source`` and store it once per distinct content."""
        with tempfile.TemporaryDirectory(prefix="cumulo-snap-") as tmp:
            zip_path = Path(tmp) / "snapshot.zip"
            digest, files = pack(source, zip_path, self.max_bytes)
            return self._store(workspace, digest, files, zip_path)

    def put(self, workspace: str, stream: IO[bytes]) -> SnapshotInfo:
        """Store an uploaded snapshot zip (the HTTP path); its id is computed here."""
        with tempfile.TemporaryDirectory(prefix="cumulo-snap-") as tmp:
            zip_path = Path(tmp) / "snapshot.zip"
            with storage_errors("receive the snapshot"), open(zip_path, "wb") as out:
                shutil.copyfileobj(stream, out, 1024 * 1024)
            digest, files = read_zip(zip_path, self.max_bytes)
            return self._store(workspace, digest, files, zip_path)

    def _store(
        self, workspace: str, digest: str, files: list[dict[str, object]], zip_path: Path
    ) -> SnapshotInfo:
        name = f"{digest}.zip"
        if not self.artifacts.exists(self._prefix(workspace), name):
            self.artifacts.put_file(self._prefix(workspace), name, zip_path)
        size = sum(int(str(f["size"])) for f in files)
        return self.store.add_snapshot(workspace, digest, size, files)

    def get(self, workspace: str, digest: str) -> SnapshotInfo:
        return self.store.get_snapshot(workspace, digest)

    def list(self, workspace: str) -> list[SnapshotInfo]:
        return self.store.list_snapshots(workspace)

    def open(self, workspace: str, digest: str) -> IO[bytes]:
        self.store.get_snapshot(workspace, digest)
        return self.artifacts.open(self._prefix(workspace), f"{digest}.zip")

    def restore(self, workspace: str, digest: str, dest: str | Path) -> Path:
        """Unpack a stored snapshot into ``dest``."""
        with tempfile.TemporaryDirectory(prefix="cumulo-snap-") as tmp:
            local = Path(tmp) / "snapshot.zip"
            with self.open(workspace, digest) as src, open(local, "wb") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)
            return extract(local, Path(dest))
