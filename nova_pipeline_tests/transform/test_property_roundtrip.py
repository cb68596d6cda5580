"""Property: for random SQLite databases, target rows + quarantined rows are exactly the source rows.

Hypothesis generates schemas (declared types from SQLite's whole vocabulary,
none included; single and composite primary keys; foreign keys; odd
identifiers) filled with values of every storage class, runs init → migrate
into a fresh PostgreSQL database, and checks per table, by rowid / key, that
each source row is either loaded with its value or quarantined, never both,
never lost; then migrates again and expects the same target content.
Databases it found failing are replayed from regressions/*.sql.

Budget: NOVA_PROPERTY_EXAMPLES examples (default 3, about 10 s each on a quiet machine: two
migrations per example); nightly, e.g. NOVA_PROPERTY_EXAMPLES=200.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import pyarrow.parquet as pq
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nova_pipeline.core import identifiers
from nova_pipeline.cli.main import main
from nova_pipeline.orchestration.defs.assets import staging_of
from nova_pipeline.extract.export import quote
from nova_pipeline.core.spec import load_spec

DECLARED = ["INTEGER", "INT", "BIGINT", "TINYINT", "UNSIGNED BIG INT", "REAL", "DOUBLE", "FLOAT", "NUMERIC",
            "DECIMAL(10,2)", "TEXT", "VARCHAR(10)", "NCHAR(3)", "CLOB", "BLOB", "", "BOOLEAN", "DATE",
            "DATETIME", "TIMESTAMP", "JSON", "UUID", "WHATEVER"]
NAMES = ["a", "B", "select", "has space", 'q"uote', "ünï", "order", "Mixed Case", "x" * 70, "x" * 69 + "y", "id"]
INT64 = st.integers(-(2**63), 2**63 - 1)
VALUES = {
    "integer": st.one_of(st.integers(-1000, 1000), INT64),
    "real": st.floats(allow_nan=False, width=64),  # SQLite stores NaN as NULL
    "text": st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
    "blob": st.binary(max_size=8),
    "date": st.sampled_from(["2024-01-05", "2024-02-30", "2024-01-05T10:00:00Z", "0000-00-00", "1706000000"]),
    "bool": st.sampled_from([0, 1, "true", "no", 2, "maybe"]),
    "json": st.sampled_from(['{"a": 1}', "[1, 2]", "{bad", '"s"', "3"]),
}
ANY = st.one_of(*VALUES.values())
SIMPLE = {"bigint", "integer", "smallint", "double precision", "text", "bytea"}


@st.composite
def databases(draw):
    """[(table, [(column, declared)], primary key, [fk], rows)] — every table a rowid table."""
    tables = []
    for t in range(draw(st.integers(1, 3))):
        names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
        cols = [(n, draw(st.sampled_from(DECLARED))) for n in names]
        pk = draw(st.sampled_from([[], names[:1], names[:2]]))
        kinds = {n: draw(st.sampled_from(list(VALUES))) for n in names}
        value = {n: st.one_of(st.none(), VALUES[kinds[n]], VALUES[kinds[n]], ANY) for n in names}
        rows = draw(st.lists(st.fixed_dictionaries(value), max_size=12))
        fks = []
        if tables and draw(st.booleans()):
            parent = tables[-1]
            if len(parent[2]) == 1:
                fks.append((names[-1], parent[0], parent[2][0]))
        tables.append((f"t{t} {draw(st.sampled_from(['', 'Odd', 'from']))}".strip(), cols, pk, fks, rows))
    return tables


def build(path: Path, tables) -> None:
    conn = sqlite3.connect(path)
    for name, cols, pk, fks, rows in tables:
        defs = [f"{quote(c)} {d}".strip() for c, d in cols]
        if pk:
            defs.append(f"PRIMARY KEY ({', '.join(map(quote, pk))})")
        defs += [f"FOREIGN KEY ({quote(c)}) REFERENCES {quote(p)} ({quote(pc)})" for c, p, pc in fks]
        conn.execute(f"CREATE TABLE {quote(name)} ({', '.join(defs)})")
        for r in rows:
            try:
                conn.execute(f"INSERT INTO {quote(name)} ({', '.join(map(quote, r))}) VALUES ({', '.join('?' * len(r))})",
                             list(r.values()))
            except sqlite3.DatabaseError:
                pass  # duplicate key or non-integer rowid alias: SQLite refuses it, so it is not a source row
    conn.commit()
    conn.close()


def expected(value, pg_type: str):
    """The loaded form of a source value in a column of `pg_type`, for the types whose cast is plain."""
    if value is None:
        return None
    if pg_type == "text":
        if isinstance(value, bytes):
            return value.decode("utf-8")
        if isinstance(value, float):
            text = str(value) if not math.isinf(value) else ("inf" if value > 0 else "-inf")
            return text
        return str(value)
    if pg_type == "bytea":
        return value if isinstance(value, bytes) else str(value).encode()
    if pg_type == "double precision":
        return float(value)
    return int(value) if not isinstance(value, str) else int(Decimal(value.strip()))


def same(src, loaded, pg_type: str) -> bool:
    if pg_type not in SIMPLE:
        return (src is None) == (loaded is None)  # cast forms vary (dates, JSON, booleans): presence must match
    want = expected(src, pg_type)
    if isinstance(want, float) and math.isnan(want):
        return loaded is not None and math.isnan(loaded)
    if pg_type == "text" and isinstance(src, float) and loaded is not None:
        return float(loaded) == src or (math.isinf(src) and "inf" in loaded.lower())
    return want == loaded


def target_rows(url: str, spec, table: str) -> list[tuple]:
    cols = [tgt for _, tgt in identifiers.target_columns(spec.tables[table])]
    q = psycopg.sql.SQL("SELECT {} FROM {}").format(psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, cols)),
                                                    psycopg.sql.Identifier(*identifiers.pg_table(spec, table)))
    with psycopg.connect(url) as conn:
        return conn.execute(q).fetchall()


def quarantined_rowids(spec, table: str) -> list[int]:
    files = sorted(Path(staging_of(spec).dir("quarantine", table)).glob("*.parquet"))
    return [json.loads(r["row"])["_nova_rowid"] for f in files for r in pq.read_table(f).to_pylist()]


def new_database(admin_url: str) -> str:
    name = f"prop_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.replace("/postgres?", f"/{name}?", 1)


def check_roundtrip(make_db, folder: Path, admin_url: str) -> None:
    """`make_db(path)` writes the source; init, migrate twice, then compare target + quarantine with the source."""
    folder.mkdir(parents=True)
    db = folder / "src.sqlite"
    make_db(db)
    runner = CliRunner()
    spec_path = folder / "spec.yaml"
    res = runner.invoke(main, ["init", "--source", str(db), "--out", str(spec_path)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    spec = load_spec(spec_path)
    url = new_database(admin_url)
    states = []
    for _ in range(2):  # the second run must give the same target and quarantine
        res = runner.invoke(main, ["migrate", "--spec", str(spec_path), "--postgres-url", url, "--no-backup",
                                   "--report", str(folder / "r.json")], catch_exceptions=False)
        report = json.loads((folder / "r.json").read_text())
        assert all(t["status"] == "loaded" and t["reconciled"] for t in report["tables"].values()), res.output
        states.append({t: (Counter(map(repr, target_rows(url, spec, t))), sorted(quarantined_rowids(spec, t)))
                       for t in spec.tables})
    assert states[0] == states[1]
    src = sqlite3.connect(db)
    for table, t in spec.tables.items():
        cols = list(t.columns)
        types = [t.columns[c].type for c in cols]
        source = {r[0]: r[1:] for r in src.execute(f"SELECT rowid, {', '.join(map(quote, cols))} FROM {quote(table)}")}
        quarantined = quarantined_rowids(spec, table)
        assert len(set(quarantined)) == len(quarantined) and set(quarantined) <= set(source), table
        kept = [source[i] for i in sorted(set(source) - set(quarantined))]
        loaded = target_rows(url, spec, table)
        assert len(loaded) == len(kept), table
        # Match loaded rows to kept source rows by content (keys may be absent): a perfect matching must exist.
        unmatched = list(loaded)
        for row in kept:
            hit = next((i for i, got in enumerate(unmatched) if all(same(s, g, ty) for s, g, ty in zip(row, got, types))),
                       None)
            assert hit is not None, (table, row, unmatched)
            unmatched.pop(hit)
    src.close()


REGRESSIONS = Path(__file__).parent / "regressions"  # shrunk failing databases, one SQL script each
EXAMPLES = int(os.environ.get("NOVA_PROPERTY_EXAMPLES", "3"))
# CI replays the same examples every run (a red build must come from a change, not a draw); the nightly budget
# (NOVA_PROPERTY_EXAMPLES set) explores new ones.
DERANDOMIZE = "NOVA_PROPERTY_EXAMPLES" not in os.environ


@settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tables=databases())
def test_target_plus_quarantine_is_exactly_the_source(tables, tmp_path_factory, pg_server):
    check_roundtrip(lambda path: build(path, tables), tmp_path_factory.mktemp("prop") / "db", pg_server)


@pytest.mark.parametrize("script", sorted(REGRESSIONS.glob("*.sql")), ids=lambda p: p.stem)
def test_recorded_regressions_round_trip(script, tmp_path, pg_server):
    def make_db(path):
        with sqlite3.connect(path) as conn:
            conn.executescript(script.read_text())

    check_roundtrip(make_db, tmp_path / "db", pg_server)

