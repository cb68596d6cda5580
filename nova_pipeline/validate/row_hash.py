"""Row hashes computed identically over Arrow batches and inside PostgreSQL.

A row's hash is the XOR of its columns' hashes. Each column is hashed with
PostgreSQL's own built-in 64-bit hash functions (ported in `pg_hash`), seeded
by the column's position so equal values in different columns differ:

| kind                                    | hashed value (SQL side)                                     |
|-----------------------------------------|-------------------------------------------------------------|
| int, bool, date, time                   | `hashint8extended(x) # (x >> 32)` of the integer x          |
|                                         | (the value; 0/1; days since 1970; µs since midnight)        |
| float8, float4                          | `hashfloat8extended(v::float8)`, -0.0 told apart from 0.0   |
| timestamp, timestamptz                  | `timestamp_hash_extended` (µs since 2000, UTC)              |
| numeric, text, char, uuid, json, bytea  | `hashtextextended` of the canonical text (see `canonical`)  |

A NULL hashes to a per-column marker. `x >> 32` is XORed in because
PostgreSQL folds a bigint to 32 bits before hashing; with it, two integers
that differ always hash differently. Timestamps keep PostgreSQL's fold, so two
timestamps collide with odds of about 2^-32 (and their min/max still differ).
Tables are compared by the count and the sum modulo 2^64 of their row hashes,
per bucket when a difference has to be located.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from nova_pipeline.validate import canonical as cn
from nova_pipeline.validate import pg_hash

TEXT_HASHED = frozenset({"numeric", "text", "char", "uuid", "json", "bytea"})
MODULUS = 1 << 64
_GOLDEN = 0x9E3779B97F4A7C15
_EPOCH_2000_US = 946_684_800_000_000
_SQL_INTEGER = {
    "int": "{c}::bigint",
    "bool": "{c}::int::bigint",
    "date": "({c} - DATE '1970-01-01')::bigint",
    "time": "(extract(epoch FROM {c}) * 1000000)::bigint",
}


def column_seed(position: int) -> int:
    """Hash seed of the column at `position` (unsigned 64-bit)."""
    return ((position + 1) * _GOLDEN) & pg_hash.MASK64


def _null_marker(position: int) -> int:
    return column_seed(position) ^ pg_hash.MASK64


def _signed(v: int) -> int:
    return v - MODULUS if v >= 1 << 63 else v


def _integers(kind: str, arr: pa.Array) -> np.ndarray:
    if kind in ("date", "time"):
        arr = cn.sortable(kind, arr)
    return arr.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)


def arrow_column_hash(position: int, kind: str, arr: pa.Array, canonical: pa.Array | None = None) -> np.ndarray:
    """Hash (uint64) of every value of one column of a clean batch; `canonical` reuses its canonical texts."""
    seed = column_seed(position)
    if kind in TEXT_HASHED:
        hashes = pg_hash.hashtext(canonical if canonical is not None else cn.arrow_canonical(kind, arr), seed)
    elif kind == "timestamp":
        micros = cn.sortable(kind, arr).fill_null(0).to_numpy(zero_copy_only=False)
        hashes = pg_hash.hashint8(micros - _EPOCH_2000_US, seed)
    elif kind in ("float8", "float4"):
        v = arr.cast(pa.float64()).fill_null(1.0).to_numpy(zero_copy_only=False)
        hashes = pg_hash.hashfloat8(v, seed) ^ ((v == 0) & np.signbit(v)).astype(np.uint64)
    else:
        x = _integers(kind, arr)
        hashes = pg_hash.hashint8(x, seed) ^ (x >> 32).view(np.uint64)
    valid = pc.is_valid(arr).to_numpy(zero_copy_only=False)
    return np.where(valid, hashes, np.uint64(_null_marker(position)))


def arrow_row_hash(column_hashes: list[np.ndarray], rows: int) -> np.ndarray:
    """Row hashes (uint64): the XOR of the column hashes."""
    out = np.zeros(rows, np.uint64)
    for h in column_hashes:
        out ^= h
    return out


def sql_column_hash(position: int, kind: str, column: sql.Composable) -> sql.Composed:
    """SQL of one column's hash (bigint; the session TimeZone must be UTC for timestamptz)."""
    seed = sql.Literal(_signed(column_seed(position)))
    if kind in TEXT_HASHED:
        # COLLATE "C": a nondeterministic column collation (COLLATE NOCASE) would hash 'a' and 'A' alike.
        h = sql.SQL('hashtextextended(({}) COLLATE "C", {})').format(cn.sql_canonical(kind, column), seed)
    elif kind == "timestamp":
        h = sql.SQL("timestamp_hash_extended({}::timestamp, {})").format(column, seed)
    elif kind in ("float8", "float4"):
        h = sql.SQL("(hashfloat8extended({c}::float8, {s}) # CASE WHEN {c}::float8 <> 0 THEN 0 "
                    "WHEN {c}::float8::text = '-0' THEN 1 ELSE 0 END)").format(c=column, s=seed)
    else:
        x = sql.SQL(_SQL_INTEGER[kind]).format(c=column)
        h = sql.SQL("(hashint8extended({x}, {s}) # ({x} >> 32))").format(x=x, s=seed)
    return sql.SQL("coalesce({}, {})").format(h, sql.Literal(_signed(_null_marker(position))))


def sql_row_hash(column_hashes: list[sql.Composable]) -> sql.Composable:
    """SQL of a row hash (bigint) from its column hashes."""
    return sql.SQL("(") + sql.SQL(" # ").join(column_hashes) + sql.SQL(")")


def hash_sum(value) -> int:
    """A SQL `sum()` of row hashes (numeric, may be negative or NULL) as the unsigned sum modulo 2^64."""
    return int(value or 0) % MODULUS
