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
killed run never leaves a half-written file that looks finished.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from nova_pipeline.core.spec import Spec

KINDS = ("raw", "clean", "quarantine")
# This machine's copy of an object-store area's snapshot, and its lock: outside the working directory.
REMOTE_LOCAL_ROOT = Path(tempfile.gettempdir()) / "nova-pipeline" / "staging"


def area_name(source: str | os.PathLike) -> str:
    """`<stem>-<10 hex digits of the sha256 of the absolute path>`: the staging area of one source file."""
    path = str(Path(source).resolve())
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path).stem)[:40] or "source"
    return f"{stem}-{hashlib.sha256(path.encode()).hexdigest()[:10]}"


def local_area(spec: Spec) -> Path:
    """The local directory of the spec source's area: the area itself for a local staging root, else a directory
    under data/.nova/staging that holds its snapshot and lock."""
    root = spec.resolve(spec.staging) if "://" not in spec.staging else REMOTE_LOCAL_ROOT
    return root / area_name(spec.resolve(spec.source.sqlite))


def for_spec(spec: Spec) -> Staging:
    """The staging area of the spec's source (relative paths resolve against the spec file)."""
    if "://" not in spec.staging:
        return Staging(str(local_area(spec)))
    base, _, query = spec.staging.partition("?")
    uri = f"{base.rstrip('/')}/{area_name(spec.resolve(spec.source.sqlite))}"
    return Staging(f"{uri}?{query}" if query else uri)


@dataclass(frozen=True)
class Staging:
    """A staging root; `fs` and `root` come from pyarrow's FileSystem.from_uri."""

    uri: str

    @property
    def _fs_root(self) -> tuple[pafs.FileSystem, str]:
        if "://" in self.uri:
            fs, root = pafs.FileSystem.from_uri(self.uri)
        else:
            fs, root = pafs.LocalFileSystem(), os.path.abspath(self.uri)
        return fs, root.rstrip("/")

    @property
    def fs(self) -> pafs.FileSystem:
        return self._fs_root[0]

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri

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
    @property
    def root(self) -> str:
        """The area's directory on `fs` (filesystem path, no scheme)."""
        return self._fs_root[1]

        base = self.dir(kind, table, partition)
        if self.fs.get_file_info(base).type != pafs.FileType.NotFound:
            self.fs.delete_dir(base)

    def read_batches(self, kind: str, table: str, partition: str | Sequence[str] | None = None,
                     columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """Stream the record batches of a table's files (row group at a time: bounded memory)."""
        for path in self.files(kind, table, partition):
            with self.fs.open_input_file(path) as f:
                pf = pq.ParquetFile(f)
                for i in range(pf.num_row_groups):
                    yield from pf.read_row_group(i, columns=columns).to_batches()

    def schema(self, kind: str, table: str, partition: str | Sequence[str] | None = None) -> pa.Schema | None:
        """Arrow schema of the first file, or None when there is none."""
        files = self.files(kind, table, partition)
        if not files:
            return None
        with self.fs.open_input_file(files[0]) as f:
            return pq.ParquetFile(f).schema_arrow

    def row_count(self, kind: str, table: str, partition: str | Sequence[str] | None = None) -> int:
        """Rows in a table's files, from Parquet footers only."""
        total = 0
        for path in self.files(kind, table, partition):
            with self.fs.open_input_file(path) as f:
                total += pq.ParquetFile(f).metadata.num_rows
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
        fs.create_dir(base, recursive=True)
        tmp = f"{base}/.{name}.{uuid.uuid4().hex}.tmp"
        try:
            with (fs.open_output_stream(tmp) as out,
                  pq.ParquetWriter(out, schema, compression="zstd", compression_level=1,
                                   use_dictionary=_text_columns(schema) or False) as w):
                yield w
            fs.move(tmp, f"{base}/{name}")
        except BaseException:
            if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                fs.delete_file(tmp)
            raise

    def remove(self, folder: str) -> str | None:
        """Delete the area's `folder` (raw, clean, quarantine, snapshot) with everything in it; its location
        when it existed, else None."""
        path = f"{self._fs_root[1]}/{folder}"
        if self.fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        self.fs.delete_dir(path)
        return path if self.is_local else f"{self.uri.split('://')[0]}://{path}"

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


def _text_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
