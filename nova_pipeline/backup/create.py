"""Create a backup set: pg_dump of the target schemas, BSON export of the Mongo database, SQLite snapshot, sealed manifest."""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
import time
from collections.abc import Callable
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from fsspec.implementations.local import LocalFileSystem

from nova_pipeline.core import connections
from nova_pipeline.backup import mongo, pgtools
from nova_pipeline.backup.crypto import CHUNK_BYTES, ENCRYPTION_PARAMS, ZSTD_LEVEL, SealedWriter, key_from_env
from nova_pipeline.backup.errors import BackupError
from nova_pipeline.backup.seal import seal
from nova_pipeline.backup.sets import (FORMAT, MANIFEST, BackupSet, filesystem, load_set, location_of,
                                       new_set_id, sweep_leftovers, write_json)
from nova_pipeline.backup.verify import check_file
from nova_pipeline.backup.workdir import WorkArea, is_local, open_private
from nova_pipeline.core.spec import Spec

META_SCHEMA = "nova_meta"
PRE_MIGRATION = "pre-migration"


def target_schemas(spec: Spec) -> list[str]:
    """PostgreSQL schemas a set covers: the default schema, schemas named in `table: schema.name`, nova_meta."""
    if spec.targets.postgres is None:
        return []
    schemas = [spec.targets.postgres.schema_]
    for _, t in spec.table_items("postgres"):
        schema, _ = t.pg_schema_table
        if schema:
            schemas.append(schema)
    return list(dict.fromkeys([*schemas, META_SCHEMA]))


def backup_dest(spec: Spec, dest: str | None = None) -> str:
    """The destination: explicit, else the spec's backup.dest (relative to the spec file)."""
    if dest:
        return dest
    return spec.backup.dest if "://" in spec.backup.dest else str(spec.resolve(spec.backup.dest))


def create_backup(spec: Spec, *, dest: str | None = None, postgres_url: str | None = None, mongo_uri: str | None = None,
                  key: bytes | None = None, no_encrypt: bool = False, label: str | None = None) -> BackupSet:
    """Write one complete, verified set under dest and return it.

    Encrypts with `key` (default NOVA_BACKUP_KEY) and seals the manifest;
    refuses to write plain files unless no_encrypt is True. The set is
    assembled in the private work area (0700/0600) from streams, so no
    plaintext copy of a target or of the source is written (except a WAL-mode
    source, see _backup_sqlite), then moved into place; leftovers of killed
    backups are swept first.
    """
    key = None if no_encrypt else (key or key_from_env(required=True))
    started = time.monotonic()
    now = datetime.now(UTC)
    location = backup_dest(spec, dest)
    sweep_leftovers(location)
    fs, root = filesystem(location)
    set_id = new_set_id(now)
    set_path = f"{root}/{set_id}"
    files: list[dict[str, Any]] = []
    versions: dict[str, str] = {"sqlite": sqlite3.sqlite_version}
    sources: dict[str, Any] = {}
    suffix = ".zst.enc" if key else ".zst"

    with WorkArea(fs, root, set_id) as work:
        def add(name: str, kind: str, produce: Callable[[BinaryIO], dict[str, Any] | None], **fields) -> dict[str, Any]:
            with open_private(fs, f"{work.path}/{name}") as raw:
                writer = SealedWriter(raw, key)
                extra = produce(writer) or {}
                sizes = writer.close()
            files.append({"name": name, "kind": kind, **fields, **extra, **sizes})
            return files[-1]

        if spec.targets.postgres is not None:
            url = connections.postgres_url(spec, postgres_url)
            sources["postgres"] = _backup_postgres(url, target_schemas(spec), versions, add, suffix)
        uri = connections.mongo_uri(spec, mongo_uri) if spec.targets.mongo is not None else None
        if uri:
            sources["mongo"] = _backup_mongo(uri, spec.targets.mongo.database, versions, add, suffix)
        sources["sqlite"] = _backup_sqlite(spec.resolve(spec.source.sqlite), work, add, suffix)

        problems = [p for f in files if (p := check_file(fs, work.path, f, key))]
        manifest = {
            "format": FORMAT,
            "set_id": set_id,
            "created_at": now.isoformat(),
            "label": label,
            "pre_migration": label == PRE_MIGRATION,
            "spec": _spec_info(spec),
            "sources": sources,
            "versions": versions,
            "compression": {"algorithm": "zstd", "level": ZSTD_LEVEL},
            "encryption": ENCRYPTION_PARAMS if key else None,
            "files": files,
            "verification": {"checked_at": datetime.now(UTC).isoformat(), "ok": not problems, "problems": problems,
                             "by": "create"},
            "duration_s": round(time.monotonic() - started, 3),
        }
        manifest["seal"] = seal(manifest, key) if key else None
        write_json(fs, f"{work.path}/{MANIFEST}", manifest)
        fs.mv(work.path, set_path, recursive=True)
    if problems:
        raise BackupError(f"backup set {set_id} failed its read-back check: {problems[0]}")
    return load_set(location_of(fs, set_path))


def _backup_postgres(url: str, schemas: list[str], versions: dict, add, suffix: str) -> dict[str, Any]:
    major, server_version = pgtools.server_info(url)
    bin_dir = pgtools.tool_dir(major)
    versions["postgres_server"] = server_version
    versions["pg_dump"] = pgtools.tool_version(bin_dir, "pg_dump")
    present = pgtools.existing_schemas(url, schemas)
    info = {"schemas": schemas, "schemas_dumped": present, "file": None}
    if present:  # pg_dump fails when no schema matches; an empty list restores as "none of them exist"
        info["file"] = f"postgres.dump{suffix}"
        add(info["file"], "postgres", lambda w: pgtools.pg_dump(url, present, w, bin_dir), schemas=present)
    return info


def _backup_mongo(uri: str, database: str, versions: dict, add, suffix: str) -> dict[str, Any]:
    client = connections.mongo_client(uri)
    connections.ping_mongo(client, uri)
    versions["mongodb"] = mongo.server_version(client)
    db = client[database]
    collections = []
    for name in mongo.collection_names(db):
        stem = f"mongo.{quote(name, safe='')}"
        meta = mongo.collection_metadata(db, name)
        add(f"{stem}.metadata.json{suffix}", "mongo", lambda w: _copy_bytes(mongo.dump_metadata(meta), w), collection=name)
        # A view's documents are computed from its source; restoring its definition is enough.
        export = (lambda w: {"documents": 0}) if meta["type"] == "view" else (
            lambda w: {"documents": mongo.export_documents(db, name, w)})
        entry = add(f"{stem}.bson{suffix}", "mongo", export, collection=name)
        collections.append({"name": name, "documents": entry["documents"], "bson": entry["name"],
                            "metadata": f"{stem}.metadata.json{suffix}"})
    return {"database": database, "collections": collections}


def _backup_sqlite(source: Path, work: WorkArea, add, suffix: str) -> dict[str, Any]:
    """A consistent copy of the source, sealed as it is read.

    A rollback-journal source is read byte for byte under a read transaction
    (its SHARED lock keeps writers from committing), so no plaintext copy is
    written. A WAL-mode source's committed pages may still sit in its -wal
    file, so it goes through SQLite's backup API into a 0600 file of the work
    area (a private temporary directory for remote destinations), sealed and
    deleted at once; a killed run leaves it to the next sweep.
    """
    if not source.is_file():
        raise BackupError(f"SQLite source not found: {source}")
    name = f"source.sqlite{suffix}"
    try:
        with closing(sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)) as src:
            if src.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                src.execute("BEGIN")
                src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the SHARED lock until COMMIT
                add(name, "sqlite", lambda w: _copy_file(source, w))
                src.execute("COMMIT")
            else:
                with _private_local_dir(work) as tmp:
                    snapshot = Path(tmp) / "source.sqlite"
                    open_private(LocalFileSystem(), str(snapshot)).close()  # SQLite keeps the 0600 mode it finds
                    with closing(sqlite3.connect(snapshot)) as dst:
                        src.backup(dst)
                    add(name, "sqlite", lambda w: _copy_file(snapshot, w))
                    snapshot.unlink()
    except sqlite3.Error as e:
        raise BackupError(f"SQLite source {source}: {e}") from None
    return {"path": str(source), "file": name}


@contextmanager
def _private_local_dir(work: WorkArea):
    """The work area itself on a local destination, else a private temporary directory (0700)."""
    if is_local(work.fs):
        yield work.path
    else:
        with tempfile.TemporaryDirectory(prefix="nova-backup-") as tmp:
            yield tmp


def _copy_bytes(data: bytes, writer) -> None:
    writer.write(data)


def _copy_file(path: Path, writer) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            writer.write(chunk)


def _spec_info(spec: Spec) -> dict[str, Any]:
    info: dict[str, Any] = {"path": spec.spec_path, "sha256": None}
    if spec.spec_path and Path(spec.spec_path).is_file():
        info["sha256"] = hashlib.sha256(Path(spec.spec_path).read_bytes()).hexdigest()
    info["mongo_database"] = spec.targets.mongo.database if spec.targets.mongo else None
    info["postgres_schemas"] = target_schemas(spec)
    return info
