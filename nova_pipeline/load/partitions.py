"""Time windows over a SQLite timestamp column, exactly as casts.py reads its values.

A window is a range of whole UTC days [first, end). A row belongs to the
window holding the instant casts.py produces for its partition column (ISO
text with or without 'T', 'Z', offsets, fractions or time; epoch seconds,
epoch milliseconds or Julian days, stored as INTEGER, REAL or numeric text,
chosen by the column's effective parse formats and casts' magnitude rule).
So every row is in exactly one window, or in none when casts cannot read its
timestamp ("unplaced": those rows are exported on their own and quarantined
by the transform, never silently dropped).

The SQL mirrors casts.py step by step: the same whitespace trim, the same
ISO grammar (GLOB and substr instead of the regex), the same float products
(IEEE doubles in both engines) rounded half to even, the same year range.
Only the day is needed, so fractions of a second never matter for ISO text.
A cheap prefilter (numeric ranges, a text range of the window's dates ±1
day, and the texts not starting with a date) keeps the exact test off all
but the candidate rows; an index on the column can serve the first two, the
third (whitespace-led or numeric text) is a scan.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Container, Iterable
from datetime import date, datetime, timedelta, timezone

import adbc_driver_sqlite.dbapi as adbc_sqlite
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nova_pipeline.core.scan_cache import FactsStore
from nova_pipeline.transform.casts import cast_column, cast_options
from nova_pipeline.extract.export import query_rows, quote, raw_batches
from nova_pipeline.core.spec import Spec

EPOCH = date(1970, 1, 1)
DAY_US = 86_400_000_000
_MIN_US = -62135596800 * 1_000_000  # casts._MIN_US: 0001-01-01
_MAX_US = 253402300800 * 1_000_000  # casts._MAX_US: 10000-01-01, exclusive
_MIN_DAY = _MIN_US // DAY_US
# pyarrow's utf8_trim_whitespace set (measured over every code point) and RE2's \s.
_TRIM = "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
_RE2_SPACE = " \t\n\f\r"
_DATE_GLOB = "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'"


class PartitionError(ValueError):
    """A partition window or column cannot be used; the message names the table."""


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _int(expr: str) -> str:
    return f"CAST({expr} AS INTEGER)"


def _rounded_day(y: str) -> str:
    """UTC day of round-half-even(y) microseconds; NULL outside casts' years 1–9999."""
    yi, fr = _int(y), f"({y} - {_int(y)})"  # y - trunc(y) is exact for doubles
    adjust = (f"CASE WHEN {fr} > 0.5 THEN 1 WHEN {fr} < -0.5 THEN -1 "
              f"WHEN abs({fr}) = 0.5 AND {yi} % 2 != 0 THEN ({fr} > 0) - ({fr} < 0) ELSE 0 END")
    # Shifted to be non-negative so SQLite's truncating division floors.
    day = f"(({yi} + {adjust} - ({_MIN_US})) / {DAY_US} + ({_MIN_DAY}))"
    return f"CASE WHEN {y} >= {_MIN_US} AND {y} < {_MAX_US} THEN {day} END"


def _numeric_day(x: str, parse: tuple[str, ...]) -> str:
    """casts._numeric_seconds for a number x (any SQLite numeric expression)."""
    numeric = [f for f in parse if f != "iso8601"]
    if not numeric:
        return "NULL"
    if numeric[0] == "julian_day":
        return _rounded_day(f"(({x}) - 2440587.5) * {float(DAY_US)}")
    seconds, millis = _rounded_day(f"({x}) * 1000000.0"), _rounded_day(f"({x}) * 1000.0")
    if "unix_seconds" in numeric and "unix_millis" in numeric:
        return f"CASE WHEN abs({x}) >= 1e11 THEN {millis} ELSE {seconds} END"
    return millis if numeric[0] == "unix_millis" else seconds


def _iso_day(s: str) -> str:
    """casts._iso_micros' day for trimmed text s that starts with YYYY-MM-DD."""
    ds, rest = f"substr({s}, 1, 10)", f"substr({s}, 11)"
    zlen = (f"(CASE WHEN {rest} GLOB '*[Zz]' THEN 1 WHEN {rest} GLOB '*[+-][0-9][0-9]:[0-9][0-9]' THEN 6 "
            f"WHEN {rest} GLOB '*[+-][0-9][0-9][0-9][0-9]' THEN 5 WHEN {rest} GLOB '*[+-][0-9][0-9]' THEN 3 ELSE 0 END)")
    zone = f"substr({rest}, length({rest}) - {zlen} + 1)"
    zsign = f"(CASE WHEN substr({zone}, 1, 1) = '-' THEN -1 ELSE 1 END)"
    zh = f"(CASE WHEN {zlen} >= 3 THEN {_int(f'substr({zone}, 2, 2)')} ELSE 0 END)"
    zm = f"(CASE WHEN {zlen} >= 5 THEN {_int(f'substr({zone}, -2)')} ELSE 0 END)"
    t = f"rtrim(substr({rest}, 1, length({rest}) - {zlen}), {_text(_RE2_SPACE)})"
    time_ok = (f"({t} = '' OR {t} GLOB '[Tt ][0-9][0-9]:[0-9][0-9]' OR {t} GLOB '[Tt ][0-9][0-9]:[0-9][0-9]:[0-9][0-9]'"
               f" OR (length({t}) >= 11 AND {t} GLOB '[Tt ][0-9][0-9]:[0-9][0-9]:[0-9][0-9][.,][0-9]*'"
               f" AND substr({t}, 11) NOT GLOB '*[^0-9]*'))")
    h, mi, sec = (_int(f"substr({t}, {p}, 2)") for p in (2, 5, 8))  # '' casts to 0
    valid = (f"{time_ok} AND substr({s}, 1, 4) != '0000' AND date(julianday({ds})) = {ds}"
             f" AND {h} <= 23 AND {mi} <= 59 AND {sec} <= 59 AND {zh} <= 23 AND {zm} <= 59")
    seconds = f"({h} * 3600 + {mi} * 60 + {sec} - {zsign} * ({zh} * 3600 + {zm} * 60))"  # within ±2 days
    day = f"({_int(f'julianday({ds}) - 2440587.5')} + ({seconds} + 86400) / 86400 - 1)"
    return f"CASE WHEN {valid} THEN {day} END"


def _common_iso_days(c: str) -> list[tuple[str, str]]:
    """(shape, day) pairs for the common ISO shapes — YYYY-MM-DD[Tt ]HH:MM:SS, optionally .fff or .ffffff,
    then nothing, Z or ±HH:MM — read at fixed positions: the same day as _iso_day, without the trim and
    the zone search. Without an offset the day is the date itself (the time of day was checked)."""
    head = f"{c} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][Tt ][0-9][0-9]:[0-9][0-9]:[0-9][0-9]*'"
    tail, fractions = f"substr({c}, 20)", ("", "[.,][0-9][0-9][0-9]", "[.,][0-9][0-9][0-9][0-9][0-9][0-9]")
    plain = " OR ".join([f"{tail} IN ('', 'Z', 'z')"] + [f"{tail} GLOB '{f}{z}'" for f in fractions[1:] for z in ("", "[Zz]")])
    zoned = " OR ".join(f"{tail} GLOB '{f}[+-][0-9][0-9]:[0-9][0-9]'" for f in fractions)
    ds, zone = f"substr({c}, 1, 10)", f"substr({c}, -6)"
    h, mi, sec, zh, zm = (_int(f"substr({c}, {p}, 2)") for p in (12, 15, 18, -5, -2))
    ok = f"substr({c}, 1, 4) != '0000' AND date(julianday({ds})) = {ds} AND {h} <= 23 AND {mi} <= 59 AND {sec} <= 59"
    days = _int(f"julianday({ds}) - 2440587.5")
    offset = f"(CASE WHEN substr({zone}, 1, 1) = '-' THEN -1 ELSE 1 END) * ({zh} * 3600 + {zm} * 60)"
    shifted = f"{days} + ({h} * 3600 + {mi} * 60 + {sec} - {offset} + 86400) / 86400 - 1"
    return [(f"{head} AND ({plain})", f"CASE WHEN {ok} THEN {days} END"),
            (f"{head} AND ({zoned})", f"CASE WHEN {ok} AND {zh} <= 23 AND {zm} <= 59 THEN {shifted} END")]


def _is_number(s: str) -> str:
    """s matches casts._NUMBER: [+-]?(digits[.digits]|.digits)([eE][+-]?digits)?"""
    body = f"(CASE WHEN substr({s}, 1, 1) IN ('+', '-') THEN substr({s}, 2) ELSE {s} END)"
    e = f"instr(lower({body}), 'e')"
    mant = f"(CASE WHEN {e} > 0 THEN substr({body}, 1, {e} - 1) ELSE {body} END)"
    exp = f"(CASE WHEN {e} > 0 THEN substr({body}, {e} + 1) ELSE '0' END)"
    exp_digits = f"(CASE WHEN substr({exp}, 1, 1) IN ('+', '-') THEN substr({exp}, 2) ELSE {exp} END)"
    return (f"({mant} NOT GLOB '*[^0-9.]*' AND {mant} GLOB '*[0-9]*' AND {mant} NOT GLOB '*.*.*'"
            f" AND {exp_digits} != '' AND {exp_digits} NOT GLOB '*[^0-9]*')")


def day_expression(spec: Spec, table: str) -> str:
    """SQLite expression: the UTC day number (days since 1970-01-01) casts.py gives the partition column, or NULL."""
    t = spec.tables[table]
    if t.partition is None:
        raise PartitionError(f"table {table!r}: no `partition` in the spec")
    col = t.partition.column
    if col not in t.columns:
        raise PartitionError(f"table {table!r}: partition column {col!r} is not in the table's columns")
    parse = cast_options(spec, t.columns[col]).parse
    c = quote(col)
    s = f"trim({c}, {_text(_TRIM)})"
    iso = _iso_day(s) if "iso8601" in parse else "NULL"
    # Most texts have a common shape, read cheaply; the general reading (trim, zone search) handles the rest.
    common = "".join(f" WHEN {shape} THEN {day}" for shape, day in _common_iso_days(c)) if "iso8601" in parse else ""
    return (f"(CASE typeof({c}) WHEN 'integer' THEN {_numeric_day(c, parse)} WHEN 'real' THEN {_numeric_day(c, parse)}"
            f" WHEN 'text' THEN CASE{common} WHEN {s} GLOB {_DATE_GLOB} THEN {iso}"
            f" WHEN {_is_number(s)} THEN {_numeric_day(f'CAST({s} AS REAL)', parse)} END END)")


def day_number(d: date) -> int:
    return (d - EPOCH).days


def day_of(number: int) -> date:
    return EPOCH + timedelta(days=number)


def _days(table: str, start: datetime | date, end: datetime | date) -> tuple[int, int]:
    out = []
    for v in (start, end):
        if isinstance(v, datetime):
            utc = v.astimezone(timezone.utc) if v.tzinfo else v
            if utc.time() != datetime.min.time():
                raise PartitionError(f"table {table!r}: window bound {v.isoformat()} is not a UTC midnight")
            v = utc.date()
        out.append(day_number(v))
    if out[0] >= out[1]:
        raise PartitionError(f"table {table!r}: empty window [{start}, {end})")
    return out[0], out[1]


def _prefilter(spec: Spec, table: str, lo: int, hi: int) -> str:
    """A superset of the window's rows that is cheap to test (see the module docstring)."""
    t = spec.tables[table]
    c = quote(t.partition.column)
    numeric = [f for f in cast_options(spec, t.columns[t.partition.column]).parse if f != "iso8601"]
    scale = {"unix_seconds": 86_400, "unix_millis": 86_400_000}
    ranges = [f"({c} >= {lo * scale[f] - 1} AND {c} < {hi * scale[f] + 1})" for f in numeric if f in scale]
    if "julian_day" in numeric:
        ranges.append(f"({c} >= {lo + 2440587.5 - 1e-3!r} AND {c} < {hi + 2440587.5 + 1e-3!r})")
    # A text starting with date D holds an instant within a day of D (offsets are below 24 h).
    first, after = day_of(lo - 1).isoformat(), day_of(hi + 1).isoformat()
    ranges.append(f"({c} >= {_text(first)} AND {c} < {_text(after)})")
    ranges.append(f"(typeof({c}) = 'text' AND {c} NOT GLOB {_DATE_GLOB})")
    return " OR ".join(ranges)


def window_filter(spec: Spec, table: str, start: datetime | date, end: datetime | date, *,
                  rowids: tuple[str, int, int] | None = None) -> tuple[str, tuple]:
    """(SQL condition, params) selecting the rows of [start, end) (whole UTC days) — export_table's `where`.

    `rowids` = (rowid alias, first, last) from rowid_bounds narrows the scan to that rowid range first.
    """
    lo, hi = _days(table, start, end)
    cond, params = f"({_prefilter(spec, table, lo, hi)}) AND {day_expression(spec, table)} BETWEEN ? AND ?", (lo, hi - 1)
    if rowids is None:
        return cond, params
    return f"{rowids[0]} BETWEEN ? AND ? AND {cond}", (rowids[1], rowids[2], *params)


def unplaced_filter(spec: Spec, table: str) -> tuple[str, tuple]:
    """(SQL condition, params) selecting the rows no window holds: casts cannot read their timestamp."""
    return f"{day_expression(spec, table)} IS NULL", ()


def _connect(sqlite_path: str | os.PathLike):
    return adbc_sqlite.connect(f"file:{urllib.parse.quote(os.path.abspath(sqlite_path))}?mode=ro")


def _query(sqlite_path: str | os.PathLike, sql: str, params: tuple = ()) -> list[tuple]:
    with _connect(sqlite_path) as conn:
        return query_rows(conn, sql, params)


def rowid_alias(sqlite_path: str | os.PathLike, table: str) -> str | None:
    """The name reaching the table's rowid (as export.py picks it), None for WITHOUT ROWID tables."""
    if _query(sqlite_path, f"PRAGMA table_list({quote(table)})")[0][4]:
        return None
    names = {r[1].lower() for r in _query(sqlite_path, f"PRAGMA table_xinfo({quote(table)})")}
    return next((a for a in ("rowid", "_rowid_", "oid") if a not in names), None)


def day_spans(sqlite_path: str | os.PathLike, spec: Spec, table: str, facts: FactsStore | None = None
              ) -> tuple[str | None, dict[int | None, tuple[int, int, int]]]:
    """(rowid alias or None, per UTC day number (None: no window): (rows, first rowid, last rowid)) in one scan.

    The days are those casts.py gives the partition column (the reference the SQL of this module mirrors),
    read through the export's raw batches and grouped in Arrow, faster than SQLite evaluating the day
    expression and sorting by it (docs/performance.md). Kept in `facts` while the file is unchanged:
    the profile scans the snapshot's days, a range run then asks for its range and rowid spans.
    """
    t = spec.tables[table]
    if t.partition is None:
        raise PartitionError(f"table {table!r}: no `partition` in the spec")
    column = t.columns[t.partition.column]
    rules = cast_options(spec, column)

    def scan() -> tuple[str | None, dict[int | None, tuple[int, int, int]]]:
        alias = rowid_alias(sqlite_path, table)
        spans: dict[int | None, tuple[int, int, int]] = {}
        for batch in raw_batches(str(sqlite_path), table, [t.partition.column], spec.batch_rows, facts):
            days = pa.table({"d": _day_numbers(cast_column(batch.column(0), column, rules).values),
                             "r": batch.column(1)})
            groups = days.group_by("d").aggregate([("r", "count"), ("r", "min"), ("r", "max")])
            for d, n, a, b in zip(*(groups.column(c).to_pylist() for c in ("d", "r_count", "r_min", "r_max"))):
                n0, a0, b0 = spans.get(d, (0, a, b))
                spans[d] = (n0 + n, min(a0, a), max(b0, b))
        return alias, {d: (n, a, b) if alias else (n, 0, 0) for d, (n, a, b) in spans.items()}

    # The day expression is keyed on what decides a row's day: the column, its type and parse formats.
    return facts.cached(sqlite_path, ("day_spans", table, day_expression(spec, table)), scan) if facts else scan()


def _day_numbers(values: pa.Array) -> pa.Array:
    """UTC day numbers (days since 1970-01-01) of cast timestamps or dates; null where the cast failed."""
    if pa.types.is_date(values.type):
        return values.cast(pa.int32()).cast(pa.int64())
    micros = values.cast(pa.int64())
    days = np.floor_divide(pc.fill_null(micros, 0).to_numpy(zero_copy_only=False), DAY_US)
    return pa.array(days, pa.int64(), mask=pc.is_null(micros).to_numpy(zero_copy_only=False))


def rowid_bounds(sqlite_path: str | os.PathLike, spec: Spec, table: str, start: datetime | date,
                 end: datetime | date, facts: FactsStore | None = None) -> tuple[str, dict[int, tuple[int, int]]] | None:
    """(rowid alias, per UTC day of [start, end): (first rowid, last rowid)); None without a rowid.

    Exports of many windows then scan only their rowid ranges instead of the table each (telemetry is
    mostly appended in time order). Rows added after the scan (see day_spans) wait for the next run.
    """
    alias, spans = day_spans(sqlite_path, spec, table, facts)
    if alias is None:
        return None
    lo, hi = _days(table, start, end)
    return alias, {d: (a, b) for d, (_, a, b) in spans.items() if d is not None and lo <= d < hi}


def rowid_day_expression(sqlite_path: str | os.PathLike, spec: Spec, table: str, days: Iterable[int],
                         facts: FactsStore | None = None) -> str | None:
    """SQL of a row's day number that reads only its rowid, when each of `days` holds exactly the rows of its
    rowid span (rows = last - first + 1: no other row lies inside it), as in a table appended in time order;
    such rows need no timestamp parsing. None when a span is shared or the table has no rowid."""
    alias, spans = day_spans(sqlite_path, spec, table, facts)
    if alias is None:
        return None
    cases = []
    for day in sorted(d for d in days if d in spans):
        rows, first, last = spans[day]
        if last - first + 1 != rows:
            return None
        cases.append(f"WHEN {alias} BETWEEN {first} AND {last} THEN {day}")
    return f"(CASE {' '.join(cases)} END)" if cases else "NULL"


def day_fingerprints(sqlite_path: str | os.PathLike, spec: Spec, table: str) -> dict[int | None, tuple[int, int]]:
    """Per UTC day number (None: unplaced rows): (rows, max rowid) — one scan; the sensor's cursor."""
    alias = rowid_alias(sqlite_path, table)
    rows = _query(sqlite_path, f"SELECT {day_expression(spec, table)} AS d, count(*), {f'max({alias})' if alias else '0'} "
                               f"FROM {quote(table)} GROUP BY d")
    return {d: (int(n), int(m or 0)) for d, n, m in rows}


def partition_key(spec: Spec, table: str, day: date) -> str:
    """The Dagster partition key holding `day` (its month's first day for monthly grain)."""
    d = day if spec.tables[table].partition.grain == "day" else day.replace(day=1)
    return d.isoformat()


def partition_range(spec: Spec, table: str, sqlite_path: str | os.PathLike,
                    facts: FactsStore | None = None) -> tuple[date, date]:
    """(first_day, last_day) of a partitioned table: `partition.start` or the first reading, and the last reading.

    An empty table (or one without readable timestamps) gives today for the missing ends.
    """
    part = spec.tables[table].partition
    if part is None:
        raise PartitionError(f"table {table!r}: no `partition` in the spec")
    days = [d for d in day_spans(sqlite_path, spec, table, facts)[1] if d is not None]
    lo, hi = (min(days), max(days)) if days else (None, None)
    today = datetime.now(timezone.utc).date()
    if part.start:
        first = date.fromisoformat(part.start)  # validated by the spec
    else:
        first = day_of(int(lo)) if lo is not None else today
    last = day_of(int(hi)) if hi is not None else max(first, today)
    return first, max(first, last)


def with_partition_column_required(spec: Spec, table: str) -> Spec:
    """The spec with the partition column NOT NULL: a row without a timestamp has no window, so it is quarantined."""
    t = spec.tables[table]
    col = t.partition.column
    columns = {**t.columns, col: t.columns[col].model_copy(update={"nullable": False})}
    return spec.model_copy(update={"tables": {**spec.tables, table: t.model_copy(update={"columns": columns})}})


RowidSpans = tuple[str, dict[int, tuple[int, int]]]  # (rowid alias, per day number: (first rowid, last rowid))


def window_days(window: tuple[datetime, datetime]) -> range:
    """The day numbers of a window [start, end)."""
    return range(*(day_number(w.date()) for w in window))


def rowid_span(rowids: RowidSpans, days: Container[int]) -> tuple[int, int]:
    """(first, last) rowid of the rows of `days` (an empty range when they hold none)."""
    spans = [span for d, span in rowids[1].items() if d in days]
    return (min(a for a, _ in spans), max(b for _, b in spans)) if spans else (1, 0)


def narrowed_window_filter(spec: Spec, table: str, window: tuple[datetime, datetime],
                           rowids: RowidSpans | None) -> tuple[str, tuple]:
    """The window's filter, narrowed to the rowid range its days span (empty when it holds no rows)."""
    if rowids is None:
        return window_filter(spec, table, *window)
    return window_filter(spec, table, *window, rowids=(rowids[0], *rowid_span(rowids, window_days(window))))
