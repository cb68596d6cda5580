"""The staging area: where Parquet files of each phase live.

Each source file has its own area under the spec's staging root (a local
directory or any pyarrow/fsspec URI such as s3://bucket/prefix), named
`<source file stem>-<hash of its absolute path>`, so migrations of different
sources from one working directory never share a file; one migration at a
time holds an area (snapshot.exclusive_area). Layout of an area:

    snapshot/source.sqlite, source.json                  the consistent copy and its identity (core/run_context.py)
    raw/<table>[/<partition>]/part-00000.parquet         SQLite values as exported
    clean/<table>[/<partition>]/part-00000.parquet       cast to target types, target column names
    quarantine/<table>[/<partition>]/part-00000.parquet  rows that could not be cast, with reasons

Files are written under a temporary name and renamed when complete, so a
killed run never leaves a half-written file that looks finished. Local
directories are 0700 (file_modes); on s3:// every object is written with
server-side encryption (SSE-S3, or SSE-KMS with the spec's key id) through
s3fs, since pyarrow's own S3 client cannot request it; with
`staging_encryption` each file is also encrypted (staging_crypto).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import uuid
from urllib.parse import parse_qsl, unquote, urlsplit
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from nova_pipeline.core import staging_crypto
from nova_pipeline.core.file_modes import private_dir

if TYPE_CHECKING:
    from nova_pipeline.core.spec import Spec

KINDS = ("raw", "clean", "quarantine")
SNAPSHOT_DIR, SNAPSHOT_FILE = "snapshot", "source.sqlite"


def area_name(source: str | os.PathLike) -> str:
    """`<stem>-<10 hex digits of the sha256 of the absolute path>`: the staging area of one source file."""
    path = str(Path(source).resolve())
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path).stem)[:40] or "source"
    return f"{stem}-{hashlib.sha256(path.encode()).hexdigest()[:10]}"


def local_area(spec: Spec) -> Path:
    """The local directory of the spec source's area: the area itself for a local staging root, else a directory
    under this process's temporary directory that holds this machine's copy of its snapshot and its lock
    (outside the working directory)."""
    remote = "://" in spec.staging
    root = Path(tempfile.gettempdir()) / "nova-pipeline" / "staging" if remote else spec.resolve(spec.staging)
    return root / area_name(spec.resolve(spec.source.sqlite))


def snapshot_in(area: Path) -> Path:
    """The snapshot's path in a local area directory."""
    return area / SNAPSHOT_DIR / SNAPSHOT_FILE


def identity_path(snapshot: str | os.PathLike) -> Path:
    """Where a snapshot's identity (source, time, sha256, source state) is recorded: `<name>.json` beside it."""
    return Path(snapshot).with_suffix(".json")


def for_spec(spec: Spec) -> Staging:
    """The staging area of the spec's source (relative paths resolve against the spec file)."""
    options = {"sse": spec.staging_sse, "kms_key_id": spec.staging_kms_key_id, "encrypted": spec.staging_encryption}
    if "://" not in spec.staging:
        return Staging(str(local_area(spec)), **options)
    base, _, query = spec.staging.partition("?")
    uri = f"{base.rstrip('/')}/{area_name(spec.resolve(spec.source.sqlite))}"
    return Staging(f"{uri}?{query}" if query else uri, **options)


@dataclass(frozen=True)
class Staging:
    """A staging root; `fs` and `root` come from pyarrow's FileSystem.from_uri (s3fs for s3://).

    `sse` and `kms_key_id`: the server-side encryption s3:// objects are written with (AES256 or aws:kms);
    `encrypted`: new files are written with Parquet modular encryption (reading needs no flag)."""

    uri: str
    sse: str = "AES256"
    kms_key_id: str | None = None
    encrypted: bool = False

    @property
    def _fs_root(self) -> tuple[pafs.FileSystem, str]:
        if self.uri.startswith("s3://"):
            fs, root = _s3_filesystem(self.uri, self.sse, self.kms_key_id)
        elif "://" in self.uri:
            fs, root = pafs.FileSystem.from_uri(self.uri)
        else:
            fs, root = pafs.LocalFileSystem(), os.path.abspath(self.uri)
        return fs, root.rstrip("/")

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri

    @property
    def fs(self) -> pafs.FileSystem:
        return self._fs_root[0]

    @property
    def root(self) -> str:
        """The area's directory on `fs` (filesystem path, no scheme)."""
        return self._fs_root[1]

    def location(self, folder: str = "") -> str:
        """The area, or one of its folders, as users name it: a path, or scheme://bucket/… (no query, no
        credentials)."""
        base = self.uri if self.is_local else f"{self.uri.split('://', 1)[0]}://{self.root}"
        return f"{base}/{folder}" if folder else base

    def dir(self, kind: str, table: str, partition: str | None = None) -> str:
        """Directory (filesystem path, no scheme) of one table's files of one kind."""
        if kind not in KINDS:
            raise ValueError(f"unknown staging kind {kind!r}")
        root = self._fs_root[1]
        folder = table.replace("%", "%25").replace("/", "%2F")  # a table named "a/b" must not nest under "a"
        return f"{root}/{kind}/{folder}" + (f"/{partition}" if partition else "")

    def files(self, kind: str, table: str, partition: str | Sequence[str] | None = None) -> list[str]:
        """Completed Parquet files of a table, in name order (partitions included when partition is None;
        a sequence of partitions gives theirs, partition after partition)."""
        if partition is not None and not isinstance(partition, str):
            return [f for p in partition for f in self.files(kind, table, p)]
        fs = self.fs
        base = self.dir(kind, table, partition)
        info = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True, recursive=partition is None))
        return sorted(i.path for i in info if i.type == pafs.FileType.File and i.path.endswith(".parquet")
                      and not i.base_name.startswith("."))

    def clear(self, kind: str, table: str, partition: str | None = None) -> None:
        """Remove a table's files of one kind (before rewriting them)."""
        base = self.dir(kind, table, partition)
        if self.fs.get_file_info(base).type != pafs.FileType.NotFound:
            self.fs.delete_dir(base)

    def read_batches(self, kind: str, table: str, partition: str | Sequence[str] | None = None,
                     columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """Stream the record batches of a table's files (row group at a time: bounded memory)."""
        for path in self.files(kind, table, partition):
            with self.fs.open_input_file(path) as f:
                pf = staging_crypto.open_parquet(f, path)
                for i in range(pf.num_row_groups):
                    yield from pf.read_row_group(i, columns=columns).to_batches()

    def schema(self, kind: str, table: str, partition: str | Sequence[str] | None = None) -> pa.Schema | None:
        """Arrow schema of the first file, or None when there is none."""
        files = self.files(kind, table, partition)
        if not files:
            return None
        with self.fs.open_input_file(files[0]) as f:
            return staging_crypto.open_parquet(f, files[0]).schema_arrow

    def row_count(self, kind: str, table: str, partition: str | Sequence[str] | None = None) -> int:
        """Rows in a table's files, from Parquet footers only."""
        total = 0
        for path in self.files(kind, table, partition):
            with self.fs.open_input_file(path) as f:
                total += staging_crypto.open_parquet(f, path).metadata.num_rows
        return total

    @contextmanager
    def writer(self, kind: str, table: str, schema: pa.Schema, partition: str | None = None,
               name: str = "part-00000.parquet") -> Iterator[pq.ParquetWriter]:
        """A zstd ParquetWriter that becomes visible under `name` only when the block exits cleanly.

        zstd level 1: the same size as the default level 3, written faster. Dictionary encoding for text and
        binary columns only: numbers and timestamps rarely repeat, so trying it on them costs writing time
        for nothing (measurements: docs/performance.md)."""
        fs = self.fs
        base = self.dir(kind, table, partition)
        if self.is_local:
            private_dir(base)
        else:
            fs.create_dir(base, recursive=True)
        tmp = f"{base}/.{name}.{uuid.uuid4().hex}.tmp"
        encryption = staging_crypto.encryption_properties() if self.encrypted else None
        try:
            with (fs.open_output_stream(tmp) as out,
                  pq.ParquetWriter(out, schema, compression="zstd", compression_level=1,
                                   use_dictionary=_text_columns(schema) or False,
                                   encryption_properties=encryption) as w):
                yield w
            fs.move(tmp, f"{base}/{name}")
        except BaseException:
            if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                fs.delete_file(tmp)
            raise

    def check_key(self) -> None:
        """StagingKeyError unless the staging key is set and opens this area's staged files (one is tried)."""
        staging_crypto.staging_key()
        for kind in KINDS:
            found = self.fs.get_file_info(pafs.FileSelector(f"{self.root}/{kind}", allow_not_found=True, recursive=True))
            if path := next((i.path for i in found if i.path.endswith(".parquet")
                             and not i.base_name.startswith(".")), None):
                with self.parquet_file(path):
                    return

    def read_json(self, path: str) -> Any | None:
        """A small JSON file on the area's filesystem, or None when it is missing or not JSON."""
        try:
            with self.fs.open_input_stream(path) as f:
                return json.loads(f.read())
        except (FileNotFoundError, ValueError):
            return None
        except OSError as e:  # object stores report a missing key as a generic OSError
            if "not found" in str(e).lower() or "nosuchkey" in str(e).lower():
                return None
            raise

    def parquet_file(self, path: str) -> pq.ParquetFile:
        """One staged file, opened (and decrypted when encrypted); close it with `.close()` or `with`."""
        return staging_crypto.open_parquet(self.fs.open_input_file(path), path)

    def dataset(self, files: list[str]):
        """A pyarrow dataset of staged files (decrypted when the first one is encrypted)."""
        import pyarrow.dataset as pads

        fmt = "parquet"
        if files:
            with self.fs.open_input_file(files[0]) as f:
                if staging_crypto.is_encrypted(f):
                    fmt = pads.ParquetFileFormat(default_fragment_scan_options=pads.ParquetFragmentScanOptions(
                        decryption_config=staging_crypto.dataset_decryption_config()))
        return pads.dataset(files, filesystem=self.fs, format=fmt)

    def remove(self, folder: str) -> bool:
        """Delete the area's `folder` (raw, clean, quarantine, snapshot) with everything in it; False when there
        was none."""
        path = f"{self.root}/{folder}"
        if self.fs.get_file_info(path).type == pafs.FileType.NotFound:
            return False
        self.fs.delete_dir(path)
        return True

    def write_keyed(self, kind: str, table: str, schema: pa.Schema,
                    keyed_batches: Iterable[tuple[str, pa.RecordBatch]], partitions: list[str]) -> dict[str, int]:
        """Write each (partition, batch) into that partition's part-00000.parquet: one file for every partition
        of `partitions` (maybe empty), all visible only once every one is complete; return rows per partition."""
        rows = dict.fromkeys(partitions, 0)
        with ExitStack() as stack:
            writers = {p: stack.enter_context(self.writer(kind, table, schema, p)) for p in partitions}
            for partition, batch in keyed_batches:
                writers[partition].write_batch(batch)
                rows[partition] += batch.num_rows
        return rows

    def write_parts(self, kind: str, table: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch],
                    partition: str | None = None, file_rows: int = 1_000_000) -> tuple[int, int]:
        """Write `batches` as part-NNNNN.parquet files of about `file_rows` rows (at least one file, maybe empty);
        return (rows, files). Each file becomes visible only when complete."""
        batches = iter(batches)
        rows = files = 0
        batch = next(batches, None)
        while True:
            with self.writer(kind, table, schema, partition, name=f"part-{files:05d}.parquet") as w:
                in_file = 0
                if batch is None:
                    w.write_table(schema.empty_table())
                while batch is not None and in_file < file_rows:
                    w.write_batch(batch)
                    in_file += batch.num_rows
                    batch = next(batches, None)
            rows, files = rows + in_file, files + 1
            if batch is None:
                return rows, files


def _s3_filesystem(uri: str, sse: str, kms_key_id: str | None) -> tuple[pafs.FileSystem, str]:
    """An s3:// URI (pyarrow's query options: endpoint_override, scheme, region) as an s3fs filesystem whose
    every write requests server-side encryption `sse` (with `kms_key_id` for aws:kms), and its path."""
    import s3fs

    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query))
    client = {}
    if endpoint := query.pop("endpoint_override", None):
        scheme = query.pop("scheme", "https")
        client["endpoint_url"] = endpoint if "://" in endpoint else f"{scheme}://{endpoint}"  # http://host:port too
    if region := query.pop("region", None):
        client["region_name"] = region
    if unknown := set(query) - {"scheme", "allow_bucket_creation", "allow_bucket_deletion"}:
        raise ValueError(f"staging {uri.split('?')[0]}: unknown S3 option {sorted(unknown)[0]!r} "
                         "(known: endpoint_override, scheme, region)")
    extra = {"ServerSideEncryption": sse} | ({"SSEKMSKeyId": kms_key_id} if kms_key_id else {})
    fs = s3fs.S3FileSystem(key=unquote(parts.username) if parts.username else None,
                           secret=unquote(parts.password) if parts.password else None,
                           client_kwargs=client, s3_additional_kwargs=extra)
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), f"{parts.netloc.rpartition('@')[2]}{parts.path}"


def _text_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
