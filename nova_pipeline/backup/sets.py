"""Backup set layout on any fsspec filesystem: naming, manifest, verification record, listing.

A set is a directory `<UTC timestamp>-<short id>` under the destination with
sealed data files, `manifest.json` (written last: a set without it is
incomplete and ignored) and `verify.json` (the latest verification result,
kept apart so the manifest's bytes never change). Sets are assembled in the
private work area (workdir.py) and moved into place complete. FORMAT sets
carry a manifest seal (seal.py); LEGACY_FORMAT sets were written before it.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

from nova_pipeline.backup.errors import BackupError
from nova_pipeline.backup.workdir import is_local, open_private, sweep_work

MANIFEST = "manifest.json"
VERIFY = "verify.json"
FORMAT = "nova-backup/2"
LEGACY_FORMAT = "nova-backup/1"
_SET_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


def filesystem(location: str) -> tuple[AbstractFileSystem, str]:
    """(filesystem, path) of a local directory or fsspec URI."""
    return fsspec.core.url_to_fs(str(location))


def location_of(fs: AbstractFileSystem, path: str) -> str:
    """The user-facing location: a plain path for local files, a URI otherwise."""
    return path if is_local(fs) else fs.unstrip_protocol(path)


def new_set_id(now: datetime | None = None) -> str:
    """`YYYYMMDDTHHMMSSZ-xxxxxx`: sorts by creation time, unique per set."""
    return f"{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def write_json(fs: AbstractFileSystem, path: str, data: dict[str, Any]) -> bytes:
    """Write JSON (0600 on local disks) under a temporary name and rename it into place; returns the bytes written."""
    body = (json.dumps(data, indent=2, sort_keys=False) + "\n").encode()
    with open_private(fs, path + ".part") as f:
        f.write(body)
    fs.mv(path + ".part", path)
    return body


@dataclass(frozen=True)
class BackupSet:
    """One complete set: where it is, its manifest and its latest verification."""

    location: str
    manifest: dict[str, Any]
    manifest_sha256: str
    verification: dict[str, Any] | None

    @property
    def set_id(self) -> str:
        return self.manifest["set_id"]

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["created_at"])

    @property
    def pre_migration(self) -> bool:
        return bool(self.manifest.get("pre_migration"))

    @property
    def legacy(self) -> bool:
        """Written before manifests were sealed."""
        return self.manifest.get("format") == LEGACY_FORMAT

    @property
    def encrypted(self) -> bool:
        return self.manifest.get("encryption") is not None

    @property
    def stored_size(self) -> int:
        return sum(f["stored_size"] for f in self.manifest["files"])

    @property
    def state(self) -> str:
        """'verified', 'failed' or 'unverified', from the latest check of this manifest."""
        check = self.verification
        if check is None or check.get("manifest_sha256") != self.manifest_sha256:
            check = self.manifest.get("verification")
        if not check:
            return "unverified"
        return "verified" if check.get("ok") else "failed"


def load_set(location: str) -> BackupSet:
    """Read a set's manifest and verification record; BackupError when it is not a complete set."""
    fs, path = filesystem(location)
    try:
        raw = fs.cat_file(f"{path}/{MANIFEST}")
    except FileNotFoundError:
        raise BackupError(f"not a complete backup set (no {MANIFEST}): {location}") from None
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise BackupError(f"damaged manifest: {location}/{MANIFEST}") from None
    if manifest.get("format") not in (FORMAT, LEGACY_FORMAT):
        raise BackupError(f"unknown backup format {manifest.get('format')!r}: {location}/{MANIFEST}")
    try:
        verification = json.loads(fs.cat_file(f"{path}/{VERIFY}"))
    except (FileNotFoundError, ValueError):
        verification = None
    return BackupSet(location_of(fs, path), manifest, hashlib.sha256(raw).hexdigest(), verification)


def list_sets(dest: str) -> list[BackupSet]:
    """Complete sets under dest, oldest first; incomplete directories are skipped."""
    fs, root = filesystem(dest)
    if not fs.exists(root):
        return []
    found = []
    for entry in sorted(fs.ls(root, detail=False)):
        if fs.isdir(entry) and fs.exists(f"{entry}/{MANIFEST}"):
            found.append(load_set(location_of(fs, entry)))
    return sorted(found, key=lambda s: (s.created_at, s.set_id))


def sweep_leftovers(location: str) -> list[str]:
    """Remove what killed backups left under a destination; returns the removed locations.

    That is work directories nobody owns any more (workdir.sweep_work) and, from
    the layout before the work area, set directories holding only `.part` files.
    """
    fs, root = filesystem(location)
    if not fs.isdir(root):
        return []
    removed = sweep_work(fs, root)
    for entry in fs.ls(root, detail=False):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if _SET_ID.match(name) and fs.isdir(entry) and not fs.exists(f"{entry}/{MANIFEST}"):
            if all(f.endswith(".part") for f in fs.ls(entry, detail=False)):
                fs.rm(entry, recursive=True)
                removed.append(entry)
    return [location_of(fs, p) for p in removed]


def parent_of(location: str) -> str:
    """The destination holding a set."""
    return location.rstrip("/").rsplit("/", 1)[0]
