"""Canonical texts and row hashes of every kind are the same computed from Arrow and inside PostgreSQL."""

from __future__ import annotations

import math
import random
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from nova_pipeline.validate import canonical as cn
from nova_pipeline.validate import pg_hash
from nova_pipeline.validate import row_hash as rh

UTC = timezone.utc
CASES = [
    ("bigint", "int", pa.int64(), [0, -1, 2**63 - 1, -(2**63), None]),
    ("double precision", "float8", pa.float64(),
     [0.1, -0.0, 1e300, 5e-324, float("nan"), float("inf"), float("-inf"), 123456789.123, None]),
    ("real", "float4", pa.float32(), [0.1, 3.4e38, float("nan"), float("-inf"), None]),
    ("numeric(12,2)", "numeric", pa.string(), ["1.50", "100", "-0.00", "0.1", "-12345.6", None]),
    ("numeric", "numeric", pa.string(), ["1E+2", "0.0000001", "NaN", "12345678901234567890.123", None]),
    ("text", "text", pa.string(), ["", "a|b", "3:x|N", "héllo ☃", " trailing ", "N", None]),
    ("char(5)", "char", pa.string(), ["ab", "ab   ", "", None]),
    ("uuid", "uuid", pa.string(), ["A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "a0eebc999c0b4ef8bb6d6bb9bd380a12", None]),
    ("boolean", "bool", pa.bool_(), [True, False, None]),
    ("timestamptz", "timestamp", pa.timestamp("us", "UTC"),
     [datetime(2024, 2, 29, 23, 59, 59, 999999, UTC), datetime(1900, 1, 1, tzinfo=UTC),
      datetime(1969, 12, 31, 23, 59, 59, 1, UTC), None]),
    ("timestamp", "timestamp", pa.timestamp("us"), [datetime(2024, 1, 1, 12, 0, 0, 5), datetime(1, 1, 1), None]),
    ("date", "date", pa.date32(), [date(2024, 3, 1), date(1960, 5, 6), None]),
    ("time", "time", pa.time64("us"), [time(0, 0), time(23, 59, 59, 999999), None]),
    ("jsonb", "json", pa.string(),
     ['{"b": 1, "a": {"dd": [1.50, 1e2, -0.0], "c": null}, "aa": "x\\ny\\u00e9\\u0001"}', '{"a":1,"a":2}', "[]",
      '"plain"', "3.0", '{"é": true, "z": false, "": 0}', None]),
    ("bytea", "bytea", pa.binary(), [b"", b"\x00\xff", b"abc", None]),
]


def _copy_values(conn: psycopg.Connection, pg_type: str, values: list) -> None:
    conn.execute(sql.SQL("CREATE TABLE t (i int, v {})").format(sql.SQL(pg_type)))
    with conn.cursor().copy("COPY t (i, v) FROM STDIN") as copy:
        for i, v in enumerate(values):
            copy.write_row((i, v))


@pytest.mark.parametrize(("pg_type", "kind", "arrow_type", "values"), CASES, ids=[c[0] for c in CASES])
def test_python_and_sql_canonical_text_and_hash_agree(pg_url, pg_type, kind, arrow_type, values):
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET TimeZone = 'Asia/Kolkata'")  # the hash must not depend on the session's zone
        _copy_values(conn, pg_type, values)
        text = cn.sql_canonical(kind, sql.Identifier("v"))
        in_sql = conn.execute(sql.SQL("SELECT {} FROM t ORDER BY i").format(text)).fetchall()
        with conn.transaction():
            conn.execute("SET LOCAL TimeZone = 'UTC'")
            hashes = [row[0] for row in conn.execute(sql.SQL("SELECT {} FROM t ORDER BY i").format(
                rh.sql_column_hash(3, kind, sql.Identifier("v"))))]
    arr = pa.array(values, arrow_type)
    assert cn.arrow_canonical(kind, arr).to_pylist() == [row[0] for row in in_sql]
    in_arrow = rh.arrow_column_hash(3, kind, arr).view(np.int64).tolist()
    assert in_arrow == hashes
    assert len(set(in_arrow)) == len(values) - (kind == "char")  # 'ab' and 'ab   ' are one char(5) value


def test_row_hash_separates_null_empty_zero_signs_and_folded_integers(pg_url):
    def row_hashes(kind, arrow_type, rows):
        cols = [pa.array([r[i] for r in rows], arrow_type) for i in range(2)]
        return rh.arrow_row_hash([rh.arrow_column_hash(i, kind, c) for i, c in enumerate(cols)], len(rows)).tolist()

    texts = row_hashes("text", pa.string(), [["a", "b"], ["b", "a"], ["", None], [None, ""], [None, None], ["", ""]])
    assert len(set(texts)) == 6
    floats = row_hashes("float8", pa.float64(), [[0.0, 1.0], [-0.0, 1.0], [1.0, 0.0], [float("nan"), 1.0]])
    assert len(set(floats)) == 4
    # PostgreSQL's hashint8 folds the high half into the low one: -1 and 2^32 - 1 collide without `x >> 32`
    ints = row_hashes("int", pa.int64(), [[-1, 0], [2**32 - 1, 0], [2**32, 0], [1, 0], [2**33 + 2, 0], [0, 0]])
    assert len(set(ints)) == 6


def test_pg_hash_port_matches_postgres(pg_url):
    rnd = random.Random(7)
    strings = ["", "a", "héllo ☃", "x" * 11, "y" * 12, "z" * 13, "w" * 25, "abc" * 400]
    strings += ["".join(rnd.choice("abé☃\n ") for _ in range(rnd.randint(0, 40))) for _ in range(200)]
    ints = [0, 1, -1, 2**31 - 1, -(2**31), 2**32, -(2**32), 2**63 - 1, -(2**63)] + [rnd.getrandbits(63) for _ in range(50)]
    floats = [0.0, -0.0, 1.5, float("nan"), float("inf"), float("-inf"), 5e-324] + [rnd.uniform(-1e9, 1e9) for _ in range(50)]
    with psycopg.connect(pg_url) as conn:
        for seed in (0, 7, -3, 2**62 + 5):
            def pg(fn, typ, values):
                return [r[0] for r in conn.execute(sql.SQL(
                    "SELECT {}(v, %s) FROM unnest(%s::{}[]) WITH ORDINALITY u(v, i) ORDER BY i").format(
                    sql.Identifier(fn), sql.SQL(typ)), (seed, values))]
            assert pg("hashtextextended", "text", strings) == pg_hash.hashtext(pa.array(strings), seed).view(np.int64).tolist()
            assert pg("hashint8extended", "int8", ints) == pg_hash.hashint8(np.array(ints), seed).view(np.int64).tolist()
            assert pg("hashfloat8extended", "float8", floats) == pg_hash.hashfloat8(np.array(floats), seed).view(np.int64).tolist()
    sliced = pa.array(strings).slice(3, 20)
    assert pg_hash.hashtext(sliced, 7).tolist() == pg_hash.hashtext(pa.array(strings[3:23]), 7).tolist()


def test_jsonb_text_orders_keys_like_postgres():
    assert cn.jsonb_text('{"bb": 1, "a": 2, "ccc": {"y": [1.0]}}') == '{"a": 2, "bb": 1, "ccc": {"y": [1.0]}}'


def test_per_value_kinds_map_repeated_values_and_nulls_back_to_their_rows():
    values = ['{"b": 1, "a": 2}', None, '{"a":2,"b":1}', '{"b": 1, "a": 2}', None, "[1.50]"]
    out = cn.arrow_canonical("json", pa.array(values, pa.string())).to_pylist()
    assert out == ['{"a": 2, "b": 1}', None, '{"a": 2, "b": 1}', '{"a": 2, "b": 1}', None, "[1.50]"]
    sliced = pa.array([b"\x01", None, b"\x01", b"\xff"], pa.binary()).slice(1)
    assert cn.arrow_canonical("bytea", sliced).to_pylist() == [None, "01", "ff"]


def test_a_memo_gives_the_same_texts_across_batches_and_stays_bounded(monkeypatch):
    monkeypatch.setattr(cn, "MEMO_LIMIT", 3)
    memo: dict[str, str] = {}
    batches = [pa.array([f'{{"k": {i % 5}, "a": 0}}' for i in range(n, n + 7)] + [None]) for n in (0, 3)]
    for batch in batches:
        assert cn.arrow_canonical("json", batch, memo).to_pylist() == cn.arrow_canonical("json", batch).to_pylist()
    assert len(memo) == 3 and memo['{"k": 0, "a": 0}'] == '{"a": 0, "k": 0}'


def test_float_nan_payloads_share_one_text():
    other_nan = pa.array([0x7FF8000000000001], pa.int64()).view(pa.float64())
    assert math.isnan(other_nan[0].as_py())
    assert cn.arrow_canonical("float8", other_nan).to_pylist() == ["NaN"]
    assert cn.arrow_canonical("timestamp", pa.array([datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=7)],
                                                    pa.timestamp("us", "UTC"))).to_pylist() == ["7"]
