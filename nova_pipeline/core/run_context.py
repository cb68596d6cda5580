"""The run context: everything a migration step needs besides its targets, explicit and rebuildable.

A RunContext is made from the spec alone (`RunContext.for_spec`), so any
process — the CLI, a Dagster step subprocess, a step on another machine — can
build the same one and find what earlier steps left: the staging area, the
source snapshot, the source profile and the facts store (core/scan_cache.py),
all kept under the staging area (local or object storage).

When staging is on object storage the snapshot is published beside the area
(`<area>/snapshot/source.sqlite` and its identity `source.json`) after it is
taken; a process that needs it downloads it into its machine's temporary
directory (staging.local_area) unless the copy there already has the same
sha256. Nothing a step needs is then kept in the working directory.
"""

from __future__ import annotations

import json
import os
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from nova_pipeline.core.scan_cache import FactsStore
from nova_pipeline.core.spec import Spec
from nova_pipeline.core.staging import SNAPSHOT_DIR, SNAPSHOT_FILE, Staging, for_spec, identity_path, local_area, \
    snapshot_in

IDENTITY_FILE = identity_path(SNAPSHOT_FILE).name
PROFILE_KEY = ("source_profile",)
_CHUNK = 8 << 20


@dataclass(frozen=True)
class RunContext:
    """Spec, staging area, snapshot location, source profile and facts store of one migration.

    `pending_snapshots` holds a snapshot begun early (extract.snapshot.started_snapshot) until a step takes
    it, and `pending_facts` each table's source facts begun in the facts worker (validate/facts_worker.py) until
    its checks wait for them; both only help steps that run in the process that began them."""

    spec: Spec
    staging: Staging
    source: Path  # the source SQLite file, resolved against the spec file
    area: Path  # this machine's directory of the staging area (staging.local_area)
    facts: FactsStore = field(compare=False, repr=False)
    pending_snapshots: dict[Any, Future] = field(default_factory=dict, compare=False, repr=False)
    pending_facts: dict[str, Future] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def for_spec(cls, spec: Spec) -> RunContext:
        """The context of the spec's source (its staging area resolved as staging.for_spec does)."""
        staging = for_spec(spec)
        return cls(spec=spec, staging=staging, source=spec.resolve(spec.source.sqlite), area=local_area(spec),
                   facts=FactsStore(staging))

    @property
    def remote(self) -> bool:
        """True when the staging area is on object storage (the snapshot is then published beside it)."""
        return not self.staging.is_local

    @property
    def snapshot_path(self) -> Path:
        """Where this machine keeps the snapshot: the staging area itself when local, else a temporary directory
        (it may be missing or stale: `local_snapshot` fetches it)."""
        return snapshot_in(self.area)

    @property
    def snapshot_location(self) -> str:
        """Where the snapshot every step reads lives: a local path, or its object-storage path beside staging."""
        if not self.remote:
            return str(self.snapshot_path)
        return self.staging.location(f"{SNAPSHOT_DIR}/{SNAPSHOT_FILE}")

    def local_snapshot(self) -> Path:
        """A local path of the current snapshot, downloaded from beside the staging area when the copy here is
        missing or another (FileNotFoundError when none was published)."""
        path = self.snapshot_path
        if not self.remote:
            return path
        remote = self._remote_identity()
        if remote is None:
            if path.exists():
                return path
            raise FileNotFoundError(f"no snapshot at {self.snapshot_location}: run the source/snapshot step first")
        if _sha256_of_identity(identity_path(path)) != remote.get("sha256") or not path.exists():
            self._download(path)
        return path

    def snapshot_exists(self) -> bool:
        """True when the snapshot is where snapshot_location says (its identity may still be missing)."""
        if not self.remote:
            return self.snapshot_path.exists()
        found = self.staging.fs.get_file_info(f"{self._remote_snapshot_dir()}/{SNAPSHOT_FILE}")
        return found.type == pafs.FileType.File

    def taken_snapshot(self) -> Path | None:
        """local_snapshot(), or None when no snapshot was taken (nothing published, nothing here)."""
        try:
            path = self.local_snapshot()
        except FileNotFoundError:
            return None
        return path if path.exists() else None

    def publish_snapshot(self) -> None:
        """Upload the snapshot taken here and its identity beside the staging area (object storage only);
        the identity goes last, so a reader never pairs a new copy with an old identity."""
        if not self.remote:
            return
        fs, base, path = self.staging.fs, self._remote_snapshot_dir(), self.snapshot_path
        fs.create_dir(base, recursive=True)
        identity = f"{base}/{IDENTITY_FILE}"
        if fs.get_file_info(identity).type != pafs.FileType.NotFound:
            fs.delete_file(identity)
        _copy(pafs.LocalFileSystem(), str(path), fs, f"{base}/{SNAPSHOT_FILE}")
        _copy(pafs.LocalFileSystem(), str(identity_path(path)), fs, identity)

    def snapshot_identity(self) -> dict[str, Any] | None:
        """The current snapshot's identity (source, taken_at, sha256, bytes, source_state), or None."""
        if self.remote:
            return self._remote_identity()
        try:
            return json.loads(identity_path(self.snapshot_path).read_text())
        except (OSError, ValueError):
            return None

    def profile(self) -> dict[str, Any] | None:
        """The source profile stored for the current snapshot, or None (not profiled, or profiled another copy)."""
        identity = self.snapshot_identity()
        return self.facts.get(PROFILE_KEY, identity.get("sha256")) if identity else None

    def save_profile(self, profile: dict[str, Any]) -> None:
        """Store the profile of the current snapshot (JSON-able) for any later step."""
        identity = self.snapshot_identity()
        if identity:
            self.facts.put(PROFILE_KEY, identity.get("sha256"), profile)

    def _remote_snapshot_dir(self) -> str:
        return f"{self.staging.root}/{SNAPSHOT_DIR}"

    def _remote_identity(self) -> dict[str, Any] | None:
        return self.staging.read_json(f"{self._remote_snapshot_dir()}/{IDENTITY_FILE}")

    def _download(self, path: Path) -> None:
        fs, base = self.staging.fs, self._remote_snapshot_dir()
        path.parent.mkdir(parents=True, exist_ok=True)
        identity = identity_path(path)
        identity.unlink(missing_ok=True)  # as take_snapshot: no moment where a new copy sits beside an old identity
        _copy(fs, f"{base}/{SNAPSHOT_FILE}", pafs.LocalFileSystem(), str(path))
        _copy(fs, f"{base}/{IDENTITY_FILE}", pafs.LocalFileSystem(), str(identity))


def _sha256_of_identity(identity: Path) -> str | None:
    try:
        return json.loads(identity.read_text()).get("sha256")
    except (OSError, ValueError):
        return None


def _copy(src_fs: pafs.FileSystem, src: str, dest_fs: pafs.FileSystem, dest: str) -> None:
    """Copy one file between filesystems; it appears at `dest` only when complete (a local file under a temporary
    name, renamed; an object store shows an upload only once it is finished)."""
    local = isinstance(dest_fs, pafs.LocalFileSystem)
    target = f"{dest}.{uuid.uuid4().hex}.partial" if local else dest
    with src_fs.open_input_stream(src) as f, dest_fs.open_output_stream(target) as out:
        while chunk := f.read(_CHUNK):
            out.write(chunk)
    if local:
        os.replace(target, dest)
