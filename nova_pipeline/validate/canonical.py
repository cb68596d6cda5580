"""The canonical text of a value, computed identically from Arrow (Python) and inside PostgreSQL (SQL).

Text-like values are hashed by their canonical text (`row_hash`), and a
differing row is told apart column by column in these texts, so every rule
here has a Python half and an SQL half kept next to each other:

| kind      | canonical text                                                   |
|-----------|------------------------------------------------------------------|
| int       | decimal integer                                                  |
| float8/4  | the IEEE-754 bit pattern as a signed integer (exact, round-trip, |
|           | -0.0 and ±Infinity kept); every NaN is `NaN`                     |
| numeric   | exact decimal without trailing fractional zeros (`trim_scale`)  |
| text      | the string; char(n) without trailing blanks; uuid lower-case     |
| bool      | `t` / `f`                                                        |
| timestamp | microseconds since the Unix epoch (UTC for timestamptz); time:   |
|           | microseconds since midnight; date: days since 1970-01-01         |
| json      | PostgreSQL's `jsonb::text`: keys ordered by (byte length, bytes),|
|           | last duplicate wins, `", "` / `": "` separators, numbers as      |
|           | numeric text                                                     |
| bytea     | lower-case hex                                                   |

When rows are matched by key, a key field is `<length>:<text>` for text,
char and json, its text otherwise, and `N` for NULL; fields join with `|`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from json.encoder import encode_basestring as quote_json  # json.dumps(s, ensure_ascii=False), in C

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from nova_pipeline.core.identifiers import target_columns
from nova_pipeline.core.spec import Spec

ROWID = "_nova_rowid"
LENGTH_PREFIXED = frozenset({"text", "char", "json"})
_PG_KINDS = {
    "smallint": "int", "integer": "int", "bigint": "int", "double precision": "float8", "real": "float4",
    "text": "text", "uuid": "uuid", "boolean": "bool", "timestamptz": "timestamp", "timestamp": "timestamp",
    "date": "date", "time": "time", "jsonb": "json", "json": "json", "bytea": "bytea",
}


@dataclass(frozen=True)
class Column:
    """A target column and the canonical kind its values are compared as."""

    name: str
    kind: str


def kind_of_pg_type(pg_type: str) -> str:
    """Canonical kind of a spec (PostgreSQL) type."""
    if pg_type in _PG_KINDS:
        return _PG_KINDS[pg_type]
    for prefix, kind in (("numeric", "numeric"), ("varchar", "text"), ("char", "char")):
        if pg_type.startswith(prefix):
            return kind
    raise ValueError(f"no canonical form for type {pg_type!r}")


def kind_of_arrow_type(t: pa.DataType) -> str:
    """Canonical kind of a clean Parquet column when the spec lists no columns."""
    checks = ((pa.types.is_integer, "int"), (pa.types.is_float64, "float8"), (pa.types.is_float32, "float4"),
              (pa.types.is_boolean, "bool"), (pa.types.is_timestamp, "timestamp"), (pa.types.is_date, "date"),
              (pa.types.is_time, "time"), (pa.types.is_string, "text"), (pa.types.is_large_string, "text"),
              (pa.types.is_binary, "bytea"), (pa.types.is_large_binary, "bytea"))
    for test, kind in checks:
        if test(t):
            return kind
    raise ValueError(f"no canonical form for Arrow type {t}")


def table_columns(spec: Spec, table: str, schema: pa.Schema | None) -> list[Column]:
    """Target columns of a table with their kinds: from the spec, else from the clean Parquet schema."""
    t = spec.tables[table]
    json_cols = set(t.json_columns)
    if t.columns:
        return [Column(target, "json" if src in json_cols else kind_of_pg_type(t.columns[src].type))
                for src, target in target_columns(t)]
    if schema is None:
        raise ValueError(f"table {table!r}: the spec lists no columns and there is no clean Parquet to read them from")
    return [Column(f.name, "json" if f.name in json_cols else kind_of_arrow_type(f.type))
            for f in schema if f.name != ROWID]


def primary_key(spec: Spec, table: str) -> list[str]:
    """Target names of the table's primary key columns (empty when it has none)."""
    t = spec.tables[table]
    names = dict(target_columns(t)) if t.columns else {}
    return [names.get(c, c) for c in t.primary_key]


def numeric_text(v: str) -> str:
    d = Decimal(v)
    if d.is_nan():
        return "NaN"
    if d.is_infinite():
        return "-Infinity" if d < 0 else "Infinity"
    if d == 0:
        return "0"
    s = format(d, "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def _json_number(d: Decimal) -> str:
    return format(d.copy_abs() if d == 0 else d, "f")


_LITERALS = {None: "null", True: "true", False: "false"}


def _key_order(key: str) -> tuple[int, bytes]:
    raw = key.encode()
    return len(raw), raw


def _jsonb_text(v) -> str:
    if isinstance(v, str):
        return quote_json(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{quote_json(k)}: {_jsonb_text(v[k])}" for k in sorted(v, key=_key_order)) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_jsonb_text(x) for x in v) + "]"
    if isinstance(v, Decimal):
        return _json_number(v)
    if v is None or isinstance(v, bool):
        return _LITERALS[v]
    return str(v)


_DECODE = json.JSONDecoder(parse_float=Decimal).decode  # built once: a decoder per value costs a third of the time


def jsonb_text(text: str) -> str:
    """The text PostgreSQL prints for `text::jsonb`."""
    return _jsonb_text(_DECODE(text))


_UUID_TEXT = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_PER_VALUE = {
    "numeric": numeric_text,
    "uuid": lambda v: str(uuid.UUID(v)),
    "json": jsonb_text,
    "bytea": bytes.hex,
}


MEMO_LIMIT = 65_536  # canonical texts a memo keeps (≈10 MB of short JSON documents)


def arrow_canonical(kind: str, arr: pa.Array, memo: dict[str, str] | None = None) -> pa.Array:
    """Canonical texts (string array, nulls kept) of one column of a clean batch; `memo` keeps the texts of
    values computed one by one (json, numeric, uuid, bytea) across the batches of a column."""
    if kind == "int":
        return arr.cast(pa.string())
    if kind in ("float8", "float4"):
        bits = arr.view(pa.int64() if kind == "float8" else pa.int32()).cast(pa.string())
        return pc.if_else(pc.is_nan(arr), pa.scalar("NaN"), bits)
    if kind == "bool":
        return pc.if_else(arr, pa.scalar("t"), pa.scalar("f"))
    if kind in ("timestamp", "date", "time"):
        return sortable(kind, arr).cast(pa.string())
    if kind == "char":
        return pc.utf8_rtrim(arr.cast(pa.string()), characters=" ")
    if kind == "text":
        return arr.cast(pa.string())
    if kind == "uuid":
        text = arr.cast(pa.string())
        if pc.all(pc.match_substring_regex(text, _UUID_TEXT)).as_py() is not False:
            return text  # already PostgreSQL's form (the transform writes UUIDs so)
    fn = _PER_VALUE[kind]
    encoded = arr.dictionary_encode()  # each distinct value is canonicalised once (payloads repeat)
    values = encoded.dictionary.to_pylist()
    texts = [fn(v) for v in values] if memo is None else [_remembered(fn, v, memo) for v in values]
    return pa.array(texts, pa.string()).take(encoded.indices)


def _remembered(fn, value, memo: dict) -> str:
    text = memo.get(value)
    if text is None:
        text = fn(value)
        if len(memo) < MEMO_LIMIT:
            memo[value] = text
    return text


def sortable(kind: str, arr: pa.Array) -> pa.Array:
    """Integer form of a temporal column: epoch µs (timestamp), µs since midnight (time), days (date)."""
    if kind == "timestamp":
        return arr.cast(pa.timestamp("us", arr.type.tz)).cast(pa.int64())
    if kind == "time":
        return arr.cast(pa.time64("us")).cast(pa.int64())
    return arr.cast(pa.date32()).cast(pa.int32())


_SQL = {
    "int": "{c}::text",
    "float8": "CASE WHEN {c} = 'NaN'::float8 THEN 'NaN' ELSE (('x' || encode(float8send({c}::float8), 'hex'))::bit(64)::bigint)::text END",
    "float4": "CASE WHEN {c} = 'NaN'::float4 THEN 'NaN' ELSE (('x' || encode(float4send({c}::float4), 'hex'))::bit(32)::int)::text END",
    "numeric": "trim_scale({c}::numeric)::text",
    "text": "{c}::text",
    "char": "rtrim({c}::text, ' ')",
    "uuid": "{c}::uuid::text",
    "bool": "CASE WHEN {c} THEN 't' WHEN NOT {c} THEN 'f' END",
    "timestamp": "(extract(epoch FROM {c}) * 1000000)::bigint::text",
    "time": "(extract(epoch FROM {c}) * 1000000)::bigint::text",
    "date": "({c} - DATE '1970-01-01')::text",
    "json": "{c}::jsonb::text",
    "bytea": "encode({c}, 'hex')",
}


def sql_canonical(kind: str, column: sql.Composable) -> sql.Composed:
    """SQL expression of a column's canonical text (NULL stays NULL)."""
    return sql.SQL(_SQL[kind]).format(c=column)


def field_text(kind: str, text: str | None) -> str:
    """The field text of one canonical text (Python, for rows fetched during a drill-down)."""
    if text is None:
        return "N"
    return f"{len(text)}:{text}" if kind in LENGTH_PREFIXED else text
