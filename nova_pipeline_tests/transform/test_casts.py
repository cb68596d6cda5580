"""casts: arrow_type, cast_options and every cast case, as (raw values, column, expected) tables."""

from __future__ import annotations

import math
import random
from datetime import date, datetime, time, timezone

import pyarrow as pa
import pytest

from nova_pipeline.transform import casts
from nova_pipeline.transform.casts import CastOptions, arrow_type, cast_column, cast_options
from nova_pipeline.core.spec import DEFAULT_TIMESTAMP_PARSE, ColumnSpec, parse_spec


class Fail(str):
    """Expected failure reason."""


def mixed(values: list) -> pa.StructArray:
    """The raw contract's mixed-storage struct from Python values (str = TEXT, bytes = BLOB)."""
    kind = {int: "integer", float: "real", str: "text", bytes: "blob", type(None): "null"}
    return pa.StructArray.from_arrays(
        [pa.array([kind[type(v)] for v in values]),
         pa.array([v if type(v) is int else None for v in values], pa.int64()),
         pa.array([v if type(v) is float else None for v in values], pa.float64()),
         pa.array([v.encode() if type(v) is str else v if type(v) is bytes else None for v in values], pa.binary())],
        names=["t", "i", "r", "b"], mask=pa.array([v is None for v in values]))


def run(values: list, typ: str, options: CastOptions = CastOptions(), **column) -> list:
    out = cast_column(mixed(values), ColumnSpec(type=typ, **column), options)
    assert len(out.values) == len(values) and out.values.type == arrow_type(typ)
    return [Fail(r) if r is not None else v for v, r in zip(out.values.to_pylist(), out.reasons.to_pylist())]


UTC = timezone.utc
TS = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)

CASES = [
    # integers
    ([1, -5, None], "integer", {}, [1, -5, None]),
    ([3.0, 2.5, 1e20, math.inf], "bigint", {},
     [3, Fail("REAL with a fraction"), Fail("out of range for bigint"), Fail("out of range for bigint")]),
    (["42", " -7 ", "12.0", "1,234", "abc", "", "1e3"], "integer", {},
     [42, -7, 12, Fail("thousands separator/ambiguous"), Fail("not an integer"), Fail("not an integer"),
      Fail("not an integer")]),
    ([32767, 32768, "-32769"], "smallint", {},
     [32767, Fail("out of range for smallint"), Fail("out of range for smallint")]),
    ([2**31], "integer", {}, [Fail("out of range for integer")]),
    (["9223372036854775807", "-9223372036854775808", "9223372036854775808", "000000000000000000000012"], "bigint", {},
     [2**63 - 1, -(2**63), Fail("out of range for bigint"), 12]),
    ([b"\x01"], "bigint", {}, [Fail("BLOB in bigint column")]),
    # floats
    ([1.5, 3, "2.25", "NaN", "Infinity", "-Infinity", math.inf, "1,5", "x"], "double precision", {},
     [1.5, 3.0, 2.25, "nan", math.inf, -math.inf, math.inf, Fail("not a number"),
      Fail("not a number")]),
    (["1,234.5"], "double precision", {}, [Fail("thousands separator/ambiguous")]),
    ([2**53, -(2**53), 2**53 + 1, -16295167231907284], "double precision", {},
     [float(2**53), -float(2**53), Fail("integer too large for double precision to hold exactly"),
      Fail("integer too large for double precision to hold exactly")]),
    ([-16295167231907284, 2**62], "timestamptz", {}, [Fail("out of range (years 1-9999)")] * 2),
    ([1.5, 1e39], "real", {}, [1.5, Fail("out of range for real")]),
    # numeric
    (["1.25", "001.50", "1.255", "12345.5", "1e2", 7, 0.1], "numeric(6,2)", {},
     ["1.25", "1.50", Fail("more than 2 decimal places for numeric(6,2)"),
      Fail("too many digits for numeric(6,2)"), "100", "7", "0.1"]),
    (["123456789012345678901234567890.123456789", 1e20, "NaN", "x", "1,000"], "numeric", {},
     ["123456789012345678901234567890.123456789", "100000000000000000000", "NaN", Fail("not a number"),
      Fail("thousands separator/ambiguous")]),
    # booleans
    ([1, 0, 1.0, "TRUE", " f ", "Yes", "n", 2, "maybe"], "boolean", {},
     [True, False, True, True, False, True, False, Fail("not in the true/false vocabulary"),
      Fail("not in the true/false vocabulary")]),
    # timestamps
    (["2023-11-14T22:13:20Z", "2023-11-14 22:13:20", "2023-11-15T00:13:20+02:00", "2023-11-14t20:13:20-0200",
      "2023-11-14 22:13:20.000000", 1700000000, 1700000000000, 1700000000.0, "1700000000"], "timestamptz", {},
     [TS] * 9),
    (["2023-11-14 22:13:20.123456789", "2024-02-29", "2023-11-14T22:13"], "timestamptz", {},
     [TS.replace(microsecond=123456), datetime(2024, 2, 29, tzinfo=UTC), TS.replace(second=0)]),
    (["2025-02-30", "2023-02-29", "0000-00-00 00:00:00", "2024-13-01", "2024-01-01 24:00:00", "garbage", "",
      1e30, math.inf], "timestamptz", {},
     [Fail("invalid date"), Fail("invalid date"), Fail("zero date"), Fail("invalid date"),
      Fail("invalid time of day"), Fail("not a recognised date/time"), Fail("not a recognised date/time"),
      Fail("out of range (years 1-9999)"), Fail("not a finite number")]),
    (["2023-11-14T23:13:20+01:00"], "timestamp", {}, [TS.replace(tzinfo=None)]),
    ([2460263.5], "timestamp", {"parse": ["julian_day"]}, [datetime(2023, 11, 15)]),
    ([1700000000], "timestamptz", {"parse": ["iso8601"]}, [Fail("number, but parse allows only iso8601")]),
    ([1700000000000], "timestamptz", {"parse": ["unix_seconds"]}, [Fail("out of range (years 1-9999)")]),
    ([1700000000], "timestamptz", {"parse": ["unix_millis"]}, [datetime(1970, 1, 20, 16, 13, 20, tzinfo=UTC)]),
    (["2024-03-01", "2024-03-01 00:00:00", "2024-03-01 10:00", 1709251200], "date", {},
     [date(2024, 3, 1), date(2024, 3, 1), Fail("time part in a date column"), date(2024, 3, 1)]),
    (["10:11", "23:59:59.5", "24:00", "10am", 5], "time", {},
     [time(10, 11), time(23, 59, 59, 500000), Fail("invalid time of day"),
      Fail("not a time of day (HH:MM[:SS[.ffffff]])"), Fail("number in time column")]),
    # text
    ([7, 1.0, 0.1, 1e20, 1 / 3, "héllo", b"blob-ok", None], "text", {},
     ["7", "1.0", "0.1", "1e+20", "0.3333333333333333", "héllo", "blob-ok", None]),
    (["a\x00b", b"\xff\xfe"], "text", {},
     [Fail("NUL character (PostgreSQL text cannot hold NUL)"), Fail("invalid UTF-8")]),
    (["abc", "abcdé", "abcdef"], "varchar(5)", {}, ["abc", "abcdé", Fail("longer than 5 characters")]),
    (["ab", "abc"], "char(2)", {}, ["ab", Fail("longer than 2 characters")]),
    # json
    (['{"a": [1, 2.50, "é"]}', " [] ", 5, 1.5, "nope", '{"a": NaN}', '{"a": "\\u0000"}', '{"a": "\\\\u0000"}',
     "[" * 100_000 + "]" * 100_000, "1e400"], "jsonb", {},
     ['{"a":[1,2.5,"é"]}', "[]", "5", "1.5", Fail("invalid JSON"), Fail("invalid JSON"),
      Fail("JSON contains \\u0000 (PostgreSQL jsonb cannot hold it)"), '{"a":"\\\\u0000"}',
      Fail("JSON nested too deeply"), Fail("invalid JSON")]),
    (["nope", '{"k": 1}', None, "nope", '{"k": 1}'], "jsonb", {},  # repeated texts are parsed once, failed per row
     [Fail("invalid JSON"), '{"k":1}', None, Fail("invalid JSON"), '{"k":1}']),
    (["not json", '{"k":1}', "a\x00"], "json", {"invalid_json": "keep_string"},
     ['"not json"', '{"k":1}', Fail("JSON contains \\u0000 (PostgreSQL jsonb cannot hold it)")]),
    # bytea / uuid
    ([b"", b"\x00\xff", "text", None, 5], "bytea", {},
     [b"", b"\x00\xff", b"text", None, Fail("number in bytea column")]),
    (["A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{a0eebc999c0b4ef8bb6d6bb9bd380a11}", bytes(range(16)), "nope", 1],
     "uuid", {},
     ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
      "00010203-0405-0607-0809-0a0b0c0d0e0f", Fail("not a UUID"), Fail("number in uuid column")]),
    # NOT NULL
    ([None, 1], "bigint", {"nullable": False}, [Fail("NULL in NOT NULL column"), 1]),
    ([None], "text", {"nullable": False}, [Fail("NULL in NOT NULL column")]),
]


@pytest.mark.parametrize(("values", "typ", "column", "expected"), CASES,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_cast_cases(values, typ, column, expected):
    options = CastOptions(parse=tuple(column.get("parse", DEFAULT_TIMESTAMP_PARSE)))
    got = run(values, typ, options, **column)
    for g, e in zip(got, expected):
        if isinstance(e, Fail):
            assert isinstance(g, Fail) and g == e, (g, e)
        elif e == "nan":
            assert math.isnan(g)
        else:
            assert not isinstance(g, Fail) and g == e and type(g) is type(e), (g, e)


@pytest.mark.parametrize(("raw", "typ", "expected"), [
    (pa.array([1, None, 2**40], pa.int64()), "bigint", [1, None, 2**40]),
    (pa.array([1.5, None], pa.float64()), "text", ["1.5", None]),
    (pa.array([b"2024-01-01", b"\xff"], pa.binary()), "timestamp", [datetime(2024, 1, 1), Fail("invalid UTF-8")]),
    (pa.nulls(2), "jsonb", [None, None]),
    (pa.chunked_array([pa.array([b"1"]), pa.array([b"x"])]), "smallint", [1, Fail("not an integer")]),
])
def test_native_raw_columns(raw, typ, expected):
    out = cast_column(raw, ColumnSpec(type=typ), CastOptions())
    got = [Fail(r) if r is not None else v for v, r in zip(out.values.to_pylist(), out.reasons.to_pylist())]
    assert got == expected
    assert out.failed is None if not any(isinstance(e, Fail) for e in expected) else out.failed.to_pylist() == [
        isinstance(e, Fail) for e in expected]


def test_native_blob_column_as_uuid():
    raw = pa.array([bytes(range(16))], pa.binary())
    assert cast_column(raw, ColumnSpec(type="uuid"), CastOptions(), blob=True).values.to_pylist() == [
        "00010203-0405-0607-0809-0a0b0c0d0e0f"]
    assert cast_column(raw, ColumnSpec(type="uuid"), CastOptions()).reasons.to_pylist() == ["not a UUID"]


@pytest.mark.parametrize(("pg", "arrow"), [
    ("smallint", pa.int16()), ("integer", pa.int32()), ("bigint", pa.int64()), ("double precision", pa.float64()),
    ("real", pa.float32()), ("numeric", pa.string()), ("numeric(10,2)", pa.string()), ("text", pa.string()),
    ("varchar(64)", pa.string()), ("char(2)", pa.string()), ("uuid", pa.string()), ("boolean", pa.bool_()),
    ("timestamptz", pa.timestamp("us", "UTC")), ("timestamp", pa.timestamp("us")), ("date", pa.date32()),
    ("time", pa.time64("us")), ("json", pa.string()), ("jsonb", pa.string()), ("bytea", pa.binary()),
])
def test_arrow_type(pg, arrow):
    assert arrow_type(pg) == arrow


def test_arrow_type_rejects_unknown():
    with pytest.raises(ValueError, match="money"):
        arrow_type("money")


def test_cast_options_precedence():
    spec = parse_spec({"source": {"sqlite": "x.sqlite"}, "tables": {}, "casts": [
        {"match": {"declared": "^date"}, "parse": ["unix_millis"]},
        {"match": {"declared": "DATETIME"}, "parse": ["julian_day"], "true": ["oui"]},
        {"match": {"type": "boolean"}, "true": ["si"], "false": ["no"]},
    ]})
    assert cast_options(spec, ColumnSpec(type="timestamptz", declared="datetime")).parse == ("unix_millis",)
    assert cast_options(spec, ColumnSpec(type="timestamptz", declared="MYDATETIME")).parse == ("julian_day",)
    assert cast_options(spec, ColumnSpec(type="timestamptz", declared="TEXT")).parse == DEFAULT_TIMESTAMP_PARSE
    own = cast_options(spec, ColumnSpec(type="timestamptz", declared="DATETIME", parse=["iso8601"]))
    assert own.parse == ("iso8601",) and own.true == ("oui",)
    boolean = cast_options(spec, ColumnSpec(type="boolean", declared="BOOL"))
    assert boolean.true == ("si",) and boolean.false == ("no",)


def test_boolean_vocabulary_from_options():
    got = run(["oui", "non", "1"], "boolean", CastOptions(true=("oui",), false=("non",)))
    assert got == [True, False, Fail("not in the true/false vocabulary")]


def test_common_iso_texts_read_as_the_general_reading_does(monkeypatch):
    rng = random.Random(3)
    texts = [f"{rng.randint(1000, 9999)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}{rng.choice('T ')}"
             f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
             f"{rng.choice(['', '.5', '.123', '.999999'])}{rng.choice(['', 'Z'])}" for _ in range(2000)] + [None]
    s = pa.array(texts, pa.string())
    fast = casts._common_iso_micros(s)
    assert fast is not None
    monkeypatch.setattr(casts, "_common_iso_micros", lambda s: None)  # the general (regex) reading
    assert fast.to_pylist() == casts._iso_micros(s, casts._Failures(len(s))).to_pylist()
    monkeypatch.undo()
    # One impossible day, or one other shape, and the whole column takes the general reading.
    assert casts._common_iso_micros(pa.array(["2024-02-30T00:00:00Z", "2024-01-01T00:00:00Z"])) is None
    assert casts._common_iso_micros(pa.array(["2024-01-01T00:00:00+02:00", "2024-01-01T00:00:00Z"])) is None
    assert run(["2024-02-30T00:00:00Z", "2024-01-01 10:00:00"], "timestamptz") == [
        Fail("invalid date"), datetime(2024, 1, 1, 10, tzinfo=UTC)]
