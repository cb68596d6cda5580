"""The canonical text of every kind is the same computed from Arrow and inside PostgreSQL."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from nova_pipeline.validation import canonical as cn

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


@pytest.mark.parametrize(("pg_type", "kind", "arrow_type", "values"), CASES, ids=[c[0] for c in CASES])
def test_python_and_sql_canonical_text_agree(pg_url, pg_type, kind, arrow_type, values):
    with psycopg.connect(pg_url) as conn:
        conn.execute(sql.SQL("CREATE TABLE t (i int, v {})").format(sql.SQL(pg_type)))
        with conn.cursor().copy("COPY t (i, v) FROM STDIN") as copy:
            for i, v in enumerate(values):
                copy.write_row((i, v))
        expr = cn.sql_field(kind, cn.sql_canonical(kind, sql.Identifier("v")))
        in_sql = [row[0] for row in conn.execute(sql.SQL("SELECT {} FROM t ORDER BY i").format(expr))]
    in_arrow = cn.arrow_fields(kind, cn.arrow_canonical(kind, pa.array(values, arrow_type))).to_pylist()
    assert in_arrow == in_sql
    assert in_arrow[-1] == "N"


def test_field_encoding_separates_null_empty_and_shifted_values():
    rows = [["a|", "b"], ["a", "|b"], ["", None], [None, ""]]
    texts = [cn.arrow_join([cn.arrow_fields("text", pa.array([r[0]], pa.string())),
                            cn.arrow_fields("text", pa.array([r[1]], pa.string()))]).to_pylist()[0] for r in rows]
    assert len(set(texts)) == 4
    assert texts[2] == "0:|N"


def test_jsonb_text_orders_keys_like_postgres():
    assert cn.jsonb_text('{"bb": 1, "a": 2, "ccc": {"y": [1.0]}}') == '{"a": 2, "bb": 1, "ccc": {"y": [1.0]}}'


def test_h60_matches_sql(pg_url):
    with psycopg.connect(pg_url) as conn:
        expected = conn.execute(sql.SQL("SELECT {}").format(cn.sql_h60(sql.Literal("abc")))).fetchone()[0]
    assert int(cn.h60_many([b"abc"])[0]) == expected < cn.HASH_MODULUS


def test_float_nan_payloads_share_one_text():
    other_nan = pa.array([0x7FF8000000000001], pa.int64()).view(pa.float64())
    assert math.isnan(other_nan[0].as_py())
    assert cn.arrow_canonical("float8", other_nan).to_pylist() == ["NaN"]
    assert cn.arrow_canonical("timestamp", pa.array([datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=7)],
                                                    pa.timestamp("us", "UTC"))).to_pylist() == ["7"]
