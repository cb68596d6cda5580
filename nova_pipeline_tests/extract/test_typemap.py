"""Type inference and DEFAULT translation: pure helpers, parametrized tables."""

from __future__ import annotations

import pytest

from nova_pipeline.core.spec import ColumnSpec
from nova_pipeline.extract.typemap import ColumnProfile, affinity, bson_type, infer_type, translate_default


@pytest.mark.parametrize("declared, expected", [
    ("INTEGER", "integer"), ("TINYINT(1)", "integer"), ("VARCHAR(20)", "text"), ("CLOB", "text"),
    ("BLOB", "blob"), ("", "blob"), ("DOUBLE PRECISION", "real"), ("FLOAT", "real"),
    ("DECIMAL(10,2)", "numeric"), ("BOOLEAN", "numeric"), ("DATETIME", "numeric"), ("STRING", "numeric"),
    ("POINT", "integer"), ("CHARINT", "integer"),  # substring rules: POINT holds INT; INT wins over CHAR
])
def test_affinity_follows_sqlite_rules(declared, expected):
    assert affinity(declared) == expected


def P(**kw) -> ColumnProfile:
    kw.setdefault("rows", sum(kw.get(k, 0) for k in ("nulls", "integers", "reals", "texts", "blobs")))
    return ColumnProfile(**kw)


@pytest.mark.parametrize("declared, profile, pg_type, cast, quarantine", [
    ("INTEGER", P(integers=10), "bigint", 0, 0),
    ("SMALLINT", P(integers=3, nulls=2), "bigint", 0, 0),
    ("INTEGER", P(integers=8, texts=2, text_integers=1), "bigint", 1, 1),
    ("INTEGER", P(integers=5, reals=2, reals_integral=2), "bigint", 2, 0),
    ("INTEGER", P(integers=1, texts=9), "text", 1, 0),  # most values are not integers
    ("REAL", P(reals=4, texts=1, text_numbers=1), "double precision", 1, 0),
    ("FLOAT", P(reals=1), "double precision", 0, 0),
    ("TEXT", P(texts=3, integers=2), "text", 2, 0),
    ("TEXT", P(texts=3, text_nul=1), "text", 0, 1),
    ("TEXT", P(texts=5, text_dates=5), "text", 0, 0),  # ISO dates stay text unless declared as dates
    ("VARCHAR(10)", P(texts=3, max_text_chars=10), "varchar(10)", 0, 0),
    ("VARCHAR(10)", P(texts=3, max_text_chars=11), "text", 0, 0),  # SQLite does not enforce the length
    ("CHAR(3)", P(texts=3, max_text_chars=3), "varchar(3)", 0, 0),  # char(n) would pad
    ("NVARCHAR(255)", P(texts=1, max_text_chars=4), "varchar(255)", 0, 0),
    ("BOOLEAN", P(integers=10, ints_01=10), "boolean", 0, 0),
    ("BOOL", P(texts=4, text_booleans=4), "boolean", 4, 0),
    ("BOOLEAN", P(integers=10, ints_01=9), "boolean", 0, 1),
    ("DATETIME", P(texts=4, text_datetimes=3, text_dates=1), "timestamptz", 4, 0),
    ("TIMESTAMP", P(integers=4, epoch_seconds=4), "timestamptz", 4, 0),
    ("DATETIME", P(texts=4, text_datetimes=1), "text", 0, 0),
    ("DATE", P(texts=2, text_dates=2), "date", 2, 0),
    ("DATE", P(texts=2, text_dates=1, text_datetimes=1), "timestamptz", 2, 0),  # date would drop the time
    ("TIME", P(texts=2, text_times=2), "time", 2, 0),
    ("JSON", P(texts=4, text_json=3), "jsonb", 0, 1),
    ("JSON", P(texts=4, text_json=1), "text", 0, 0),
    ("UUID", P(texts=3, text_uuids=3), "uuid", 0, 0),
    ("UUID", P(blobs=2, blobs_16=2), "uuid", 2, 0),
    ("DECIMAL(10,2)", P(reals=3, num_min=1.5, num_max=99.25, over_scale=0), "numeric(10,2)", 0, 0),
    ("NUMERIC(10,2)", P(reals=3, num_min=1.5, num_max=99.25, over_scale=1), "numeric", 0, 0),
    ("NUMERIC(4,2)", P(reals=3, num_min=1.5, num_max=100.0, over_scale=0), "numeric", 0, 0),
    ("NUMERIC", P(integers=3, reals=1), "numeric", 0, 0),
    ("NUMERIC(6,2)", P(reals=3, texts=1, num_min=1.0, num_max=None, over_scale=0), "numeric", 0, 1),  # range unknown
    ("BLOB", P(blobs=3), "bytea", 0, 0),
    ("", P(integers=3, nulls=1), "bigint", 0, 0),
    ("", P(reals=2, integers=1, num_min=1, num_max=2.5), "double precision", 1, 0),
    ("", P(integers=2, num_min=0, num_max=2**60, reals=1), "numeric", 0, 0),  # 2**60 is not exact as a double
    ("", P(integers=2, texts=1), "text", 2, 0),
    ("", P(blobs=2), "bytea", 0, 0),
    ("", P(nulls=3), "text", 0, 0),
    ("STRING", P(integers=1, texts=1), "text", 1, 0),  # numeric affinity by accident: values decide
])
def test_infer_type(declared, profile, pg_type, cast, quarantine):
    inf = infer_type(declared, profile)
    assert (inf.pg_type, inf.rows_needing_cast, inf.rows_to_quarantine) == (pg_type, cast, quarantine)
    assert ColumnSpec(type=inf.pg_type).type == pg_type  # always a type the spec accepts


def test_infer_type_notes_say_why():
    assert "cannot be cast to bigint" in infer_type("INTEGER", P(integers=1, texts=9)).note
    assert infer_type("VARCHAR(10)", P(texts=1, max_text_chars=11)).note.startswith(
        "values up to 11 characters exceed varchar(10); proposed as text")
    assert "mixed storage classes" in infer_type("", P(integers=1, texts=1)).note


@pytest.mark.parametrize("profile, parse", [
    (P(integers=2, epoch_seconds=2), ("unix_seconds",)),
    (P(integers=2, epoch_millis=2), ("unix_millis",)),
    (P(texts=1, text_datetimes=1, integers=1, epoch_seconds=1), ("iso8601", "unix_seconds")),
    (P(reals=2, julian_days=2), ("julian_day",)),
    (P(texts=2, text_datetimes=2), None),
])
def test_timestamp_parse_formats_follow_observed_numbers(profile, parse):
    assert infer_type("DATETIME", profile).parse == parse


@pytest.mark.parametrize("pg_type, bson", [
    ("bigint", "long"), ("double precision", "double"), ("numeric(10,2)", "decimal"), ("boolean", "bool"),
    ("timestamptz", "date"), ("date", "date"), ("jsonb", "object"), ("bytea", "binData"), ("text", "string"),
    ("varchar(5)", "string"), ("uuid", "string"),
])
def test_bson_type(pg_type, bson):
    assert bson_type(pg_type) == bson


@pytest.mark.parametrize("sqlite, pg_type, expected", [
    (None, "text", None),
    ("NULL", "bigint", None),
    ("CURRENT_TIMESTAMP", "timestamptz", "CURRENT_TIMESTAMP"),
    ("current_timestamp", "text", "to_char((now() AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24:MI:SS')"),
    ("CURRENT_DATE", "date", "CURRENT_DATE"),
    ("CURRENT_DATE", "timestamptz", "CURRENT_DATE"),
    ("datetime('now')", "timestamptz", "now()"),
    ("(datetime('now', 'localtime'))", "timestamptz", "now()"),
    ("date('now')", "date", "CURRENT_DATE"),
    ("strftime('%s','now')", "bigint", "extract(epoch from now())::bigint"),
    ("strftime('%s', 'now')", "timestamptz", "now()"),
    ("0", "bigint", "0"),
    ("-1.5", "double precision", "-1.5"),
    ("0x1F", "bigint", "31"),
    ("1", "boolean", "TRUE"),
    ("0", "boolean", "FALSE"),
    ("TRUE", "boolean", "TRUE"),
    ("FALSE", "bigint", "0"),
    ("'it''s'", "text", "'it''s'"),
    ('"quoted"', "text", "'quoted'"),  # SQLite reads a double-quoted default as a string
    ("'yes'", "boolean", "TRUE"),
    ("'2024-01-31'", "date", "'2024-01-31'"),
    ("'{\"a\": 1}'", "jsonb", "'{\"a\": 1}'"),
    ("'abc'", "varchar(5)", "'abc'"),
    ("x'00ff'", "bytea", "'\\x00ff'"),
    ("7", "text", "'7'"),
])
def test_translate_default(sqlite, pg_type, expected):
    assert translate_default(sqlite, pg_type) == (expected, None)


@pytest.mark.parametrize("sqlite, pg_type", [
    ("random()", "bigint"),
    ("(abs(random()) % 10)", "bigint"),
    ("1.5", "bigint"),
    ("'abc'", "bigint"),
    ("'not a date'", "timestamptz"),
    ("'toolong'", "varchar(3)"),
    ("CURRENT_TIME", "date"),
    ("2", "boolean"),
    ("'{bad'", "jsonb"),
    ("x'00'", "text"),
])
def test_untranslatable_defaults_are_dropped_with_a_warning(sqlite, pg_type):
    expr, warning = translate_default(sqlite, pg_type)
    assert expr is None
    assert sqlite in warning and "dropped" in warning
