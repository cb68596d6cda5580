"""partitions: SQLite window filters agree with casts.py row by row; ranges; per-day fingerprints."""

from __future__ import annotations

import random
import sqlite3
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nova_pipeline.load import partitions as P
from nova_pipeline.transform.casts import cast_column, cast_options
from nova_pipeline.extract.export import export_table
from nova_pipeline.core.spec import SpecError, parse_spec
from nova_pipeline.core.staging import Staging

BASE = datetime(2024, 1, 31, tzinfo=timezone.utc)  # day and month boundaries within ±3 days
ODD = ["2024-02-30", "2024-01-31T24:00:00", "garbage", "", None, "2024-01-31T10:00:00+24:00", b"\x01blob",
       "0000-00-00", "2024-01-31T", "1e400", "2024-01-31T10:00:00.5x", "2024-01-31 10:00\v+02:00", "0000-01-01",
       "2024-01-31t23:59:59.123z", "2024-01-31 00:00:00.999999+00:01", "2024-02-01T00:00:00-23:59",
       "2023-02-29T00:00:00Z", "2024-01-31T23:60:00Z", "2024-01-31T12:00:00.1234Z", "2024-01-31T12:00:00+05:60"]


def _offset(t: datetime, rng: random.Random) -> str:
    minutes = rng.choice([-(23 * 60 + 59), -330, -60, 0, 60, 330, 23 * 60 + 59])
    local, sign, a = t + timedelta(minutes=minutes), "+" if minutes >= 0 else "-", abs(minutes)
    forms = [f"{sign}{a // 60:02d}:{a % 60:02d}", f"{sign}{a // 60:02d}{a % 60:02d}", f" \t{sign}{a // 60:02d}:{a % 60:02d}"]
    return local.strftime("%Y-%m-%dT%H:%M:%S") + rng.choice(forms + ([f"{sign}{a // 60:02d}"] if a % 60 == 0 else []))


def random_values(rng: random.Random, n: int) -> list:
    """Timestamps as apps store them: ISO variants, offsets, epoch s/ms as INTEGER, REAL or text, and junk."""
    out = []
    for _ in range(n):
        edge = rng.choice([-86401, -86400, -1, 0, 1, 86399, 86400])
        t = BASE + timedelta(seconds=rng.choice([rng.randint(-3 * 86400, 3 * 86400), edge]),
                             microseconds=rng.choice([0, 0, 1, 499_999, 500_000, 999_999]))
        ep = t.timestamp()
        day_start = int(ep) // 86400 * 86400
        out.append(rng.choice([
            lambda: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), lambda: t.strftime("%Y-%m-%d %H:%M:%S"),
            lambda: _offset(t, rng), lambda: int(ep), lambda: int(ep * 1000), lambda: ep, lambda: ep * 1000,
            lambda: t.strftime("%Y-%m-%d"), lambda: str(int(ep)), lambda: " " + t.strftime("%Y-%m-%dT%H:%M") + "z\u00a0",
            lambda: rng.choice(ODD), lambda: day_start + rng.choice([-5e-7, -1e-7, 0.0, 5e-7, 86400 - 5e-7]),
            lambda: str(ep * 1000) + rng.choice(["", " "]), lambda: f"{ep:.6e}",
            lambda: rng.choice([0, -1, 1e11, 1e11 - 1, 99999999999.9, -86400.0000001, 2440587.5]),
            lambda: t.strftime("%Y-%m-%dT%H:%M:%S,%f")[:-3] + rng.choice(["", "Z", "+0100"]),
        ])())
    return out


def make_source(path, declared: str, values: list) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, ts {declared})")
        conn.executemany("INSERT INTO t (ts) VALUES (?)", [(v,) for v in values])
    return str(path)


def make_spec(db: str, declared: str, parse: list[str] | None = None, start: str | None = None):
    col = {"type": "timestamptz", "declared": declared, **({"parse": parse} if parse else {})}
    return parse_spec({"source": {"sqlite": db}, "tables": {"t": {
        "columns": {"id": {"type": "bigint"}, "ts": col}, "partition": {"column": "ts", **({"start": start} if start else {})}}}})


def casts_days(db: str, spec, tmp_path) -> dict[int, int | None]:
    """rowid → UTC day number of the instant casts.py produces (None when it quarantines the value)."""
    stg = Staging(str(tmp_path / "stg"))
    export_table(db, "t", ["ts"], stg)
    raw = pa.concat_tables(pq.read_table(f) for f in stg.files("raw", "t"))
    col = spec.tables["t"].columns["ts"]
    micros = cast_column(raw.column("ts"), col, cast_options(spec, col)).values.cast(pa.int64()).to_pylist()
    return {r: None if u is None else u // P.DAY_US for r, u in zip(raw.column("_nova_rowid").to_pylist(), micros)}


def rows_where(db: str, condition: tuple[str, tuple]) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [r for (r,) in conn.execute(f"SELECT rowid FROM t WHERE {condition[0]}", condition[1])]


@pytest.mark.parametrize("declared, parse, seed", [
    ("DATETIME", None, 1), ("DATETIME", None, 2), ("TEXT", None, 3), ("", None, 4),
    ("DATETIME", ["unix_millis", "iso8601"], 5), ("DATETIME", ["iso8601", "unix_seconds"], 6),
    ("REAL", ["julian_day", "iso8601"], 7), ("DATETIME", ["iso8601"], 8),
])
def test_daily_windows_partition_rows_exactly_as_casts_reads_them(tmp_path, declared, parse, seed):
    db = make_source(tmp_path / "s.sqlite", declared, random_values(random.Random(seed), 1500))
    spec = make_spec(db, declared, parse)
    want = casts_days(db, spec, tmp_path)
    days = {d for d in want.values() if d is not None}
    assert len(days) >= 5 and sum(d is None for d in want.values()) > 20  # the mix really spans days and junk
    placed: dict[int, int] = {}
    for d in sorted(days | {d + 1 for d in days} | {d - 1 for d in days}):
        for rowid in rows_where(db, P.window_filter(spec, "t", P.day_of(d), P.day_of(d + 1))):
            assert rowid not in placed, f"row {rowid} in two windows"
            placed[rowid] = d
    unplaced = set(rows_where(db, P.unplaced_filter(spec, "t")))
    assert placed == {r: d for r, d in want.items() if d is not None}
    assert unplaced == {r for r, d in want.items() if d is None}


def test_multi_day_window_equals_union_of_days(tmp_path):
    db = make_source(tmp_path / "s.sqlite", "DATETIME", random_values(random.Random(9), 800))
    spec = make_spec(db, "DATETIME")
    month = set(rows_where(db, P.window_filter(spec, "t", date(2024, 1, 1), date(2024, 2, 1))))
    days = set()
    for d in range(P.day_number(date(2024, 1, 1)), P.day_number(date(2024, 2, 1))):
        days |= set(rows_where(db, P.window_filter(spec, "t", P.day_of(d), P.day_of(d + 1))))
    assert month == days and len(month) > 100
    alias, bounds = P.rowid_bounds(db, spec, "t", date(2024, 1, 1), date(2024, 2, 1))
    for d, (first, last) in bounds.items():
        window = (P.day_of(d), P.day_of(d + 1))
        narrowed = rows_where(db, P.window_filter(spec, "t", *window, rowids=(alias, first, last)))
        assert narrowed == rows_where(db, P.window_filter(spec, "t", *window)) and min(narrowed) == first


def test_window_bounds_must_be_utc_midnights(tmp_path):
    spec = make_spec(make_source(tmp_path / "s.sqlite", "DATETIME", []), "DATETIME")
    with pytest.raises(P.PartitionError, match="not a UTC midnight"):
        P.window_filter(spec, "t", datetime(2024, 1, 1, 1, tzinfo=timezone.utc), date(2024, 1, 2))
    with pytest.raises(P.PartitionError, match="empty window"):
        P.window_filter(spec, "t", date(2024, 1, 2), date(2024, 1, 2))
    lo, hi = datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))), datetime(2024, 1, 2, tzinfo=timezone.utc)
    assert P.window_filter(spec, "t", lo, hi)[1] == (P.day_number(date(2024, 1, 1)),) * 2


def test_partition_range_from_first_reading_or_spec_start(tmp_path):
    db = make_source(tmp_path / "s.sqlite", "DATETIME", ["2024-01-03T23:30:00-01:00", 1704585600, "junk", None])
    assert P.partition_range(make_spec(db, "DATETIME"), "t", db) == (date(2024, 1, 4), date(2024, 1, 7))
    assert P.partition_range(make_spec(db, "DATETIME", start="2023-12-01"), "t", db) == (date(2023, 12, 1), date(2024, 1, 7))
    with pytest.raises(SpecError, match="expected a day as YYYY-MM-DD"):
        make_spec(db, "DATETIME", start="Jan 1")


def test_day_fingerprints_change_with_late_rows(tmp_path):
    db = make_source(tmp_path / "s.sqlite", "DATETIME", ["2024-01-01T10:00:00Z", "2024-01-02T10:00:00Z", "bad"])
    spec = make_spec(db, "DATETIME")
    before = P.day_fingerprints(db, spec, "t")
    d1, d2 = P.day_number(date(2024, 1, 1)), P.day_number(date(2024, 1, 2))
    assert before == {d1: (1, 1), d2: (1, 2), None: (1, 3)}
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO t (ts) VALUES (?)", (1704103200000,))  # 2024-01-01T10:00Z in epoch ms
    after = P.day_fingerprints(db, spec, "t")
    assert after[d1] == (2, 4) and after[d2] == before[d2]
    assert P.partition_key(spec, "t", date(2024, 1, 15)) == "2024-01-15"


def test_partition_column_required_for_unplaced_rows(tmp_path):
    spec = make_spec(make_source(tmp_path / "s.sqlite", "DATETIME", []), "DATETIME")
    assert spec.tables["t"].columns["ts"].nullable
    assert not P.with_partition_column_required(spec, "t").tables["t"].columns["ts"].nullable


def _days_by_sql(db: str, day_sql: str) -> dict[int, int | None]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute(f"SELECT rowid, {day_sql} FROM t"))


def test_rowid_day_expression_only_where_each_day_is_its_own_rowid_span(tmp_path):
    # Appended in time order, with a junk reading before the days and one after them.
    ordered = ["junk", *[(BASE + timedelta(hours=5 * i)).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(20)], None]
    db = make_source(tmp_path / "ordered.sqlite", "DATETIME", ordered)
    spec = make_spec(db, "DATETIME")
    exact = _days_by_sql(db, P.day_expression(spec, "t"))
    days = {d for d in exact.values() if d is not None}
    cheap = P.rowid_day_expression(db, spec, "t", days)
    assert cheap is not None and "ts" not in cheap  # reads the rowid only
    assert _days_by_sql(db, cheap) == exact  # every row gets the same day (or none)
    some = sorted(days)[1:3]
    assert _days_by_sql(db, P.rowid_day_expression(db, spec, "t", some)) == {
        r: (d if d in some else None) for r, d in exact.items()}
    assert P.rowid_day_expression(db, spec, "t", [min(days) - 10]) == "NULL"

    # A late reading of the first day, appended last: that day's span now holds the other days' rows.
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO t (ts) VALUES (?)", (ordered[1],))
    assert P.rowid_day_expression(db, spec, "t", days) is None


@pytest.mark.parametrize("declared, parse, seed", [("DATETIME", None, 11), ("REAL", ["julian_day", "iso8601"], 12)])
def test_day_spans_from_casts_equal_the_sql_day_of_every_row(tmp_path, declared, parse, seed):
    db = make_source(tmp_path / "s.sqlite", declared, random_values(random.Random(seed), 1500))
    spec = make_spec(db, declared, parse)
    alias, spans = P.day_spans(db, spec, "t")
    with sqlite3.connect(db) as conn:
        by_sql = {d: (n, a, b) for d, n, a, b in conn.execute(
            f"SELECT {P.day_expression(spec, 't')} AS d, count(*), min(rowid), max(rowid) FROM t GROUP BY d")}
    assert alias == "rowid" and spans == by_sql and len(spans) > 5 and spans[None][0] > 20
