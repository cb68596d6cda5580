"""PostgreSQL checks against source facts: a clean load passes, each corruption fails the right check by key."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from nova_pipeline.core.spec import parse_spec
from nova_pipeline.core.staging import Staging
from nova_pipeline.core import results as r
from nova_pipeline.validate.postgres_checks import postgres_checks
from nova_pipeline.validate.source_facts import source_facts

N = 300
SPEC = {
    "source": {"sqlite": "x.sqlite"},
    "targets": {"postgres": {"schema": "core"}},
    "tables": {
        "accounts": {"primary_key": ["id"], "max_quarantined_rows": 5, "columns": {
            "id": {"type": "bigint", "nullable": False},
            "name": {"type": "text", "nullable": False},
            "amount": {"type": "double precision", "expect": {"min": 0, "max": 1000}},
            "ratio": {"type": "real"},
            "balance": {"type": "numeric(12,2)"},
            "created": {"type": "timestamptz"},
            "active": {"type": "boolean"},
            "meta": {"type": "jsonb"},
            "blob": {"type": "bytea"},
        }},
        "orders": {"primary_key": ["order_id"], "columns": {
            "order_id": {"type": "integer"}, "account_id": {"type": "bigint"}, "qty": {"type": "smallint"}},
            "foreign_keys": [{"columns": ["account_id"], "references": "accounts", "referenced_columns": ["id"]}]},
    },
}
QUARANTINE = pa.schema([(c, pa.string()) for c in ("table", "source_key", "column", "raw_value", "reason", "row")])


def accounts() -> pa.Table:
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    ratio = [i / 7 for i in range(N)]
    ratio[7], ratio[8], ratio[9] = float("nan"), float("inf"), -0.0
    return pa.table({
        "id": pa.array(range(1, N + 1), pa.int64()),
        "name": [f"user {i}" if i % 10 else "" for i in range(N)],
        "amount": pa.array([float(i % 997) + 0.25 for i in range(N)], pa.float64()),
        "ratio": pa.array(ratio, pa.float32()),
        "balance": [None if i % 13 == 0 else f"{i * 3}.{i % 100:02d}" for i in range(N)],
        "created": pa.array([t0 + timedelta(seconds=i, microseconds=i) for i in range(N)], pa.timestamp("us", "UTC")),
        "active": [i % 3 == 0 for i in range(N)],
        "meta": [json.dumps({"zeta": i, "a": [1.5, {"yy": None, "b": "x"}]}) if i % 5 else None for i in range(N)],
        "blob": [bytes([i % 256, 0]) for i in range(N)],
        "_nova_rowid": pa.array(range(1, N + 1), pa.int64()),
    })


def orders() -> pa.Table:
    return pa.table({"order_id": pa.array(range(1, N + 1), pa.int32()),
                     "account_id": pa.array([1 + i % N for i in range(N)], pa.int64()),
                     "qty": pa.array([i % 50 for i in range(N)], pa.int16()),
                     "_nova_rowid": pa.array(range(1, N + 1), pa.int64())})


def stage(staging: Staging, table: str, data: pa.Table, quarantined: int = 0) -> None:
    with staging.writer("raw", table, data.schema) as w:
        w.write_table(data)
        if quarantined:
            w.write_table(data.slice(0, quarantined))
    with staging.writer("clean", table, data.schema) as w:
        w.write_table(data)
    rows = [[table, json.dumps({"id": -i}), "amount", "abc", "not a number", "{}"] for i in range(quarantined)]
    with staging.writer("quarantine", table, QUARANTINE) as w:
        w.write_table(pa.table(list(zip(*rows)) if rows else [[]] * 6, schema=QUARANTINE))


def load(conn: psycopg.Connection, spec, table: str, data: pa.Table, constraints: bool = False) -> None:
    cols = spec.tables[table].columns
    conn.execute("CREATE SCHEMA IF NOT EXISTS core")
    conn.execute(sql.SQL("CREATE TABLE core.{} ({})").format(sql.Identifier(table), sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(s.type)) for c, s in cols.items())))
    with conn.cursor().copy(sql.SQL("COPY core.{} FROM STDIN").format(sql.Identifier(table))) as copy:
        for row in data.drop_columns(["_nova_rowid"]).to_pylist():
            copy.write_row(list(row.values()))
    if constraints:
        conn.execute(sql.SQL("ALTER TABLE core.{} ADD PRIMARY KEY ({})").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, spec.tables[table].primary_key))))


@pytest.fixture
def env(pg_url, tmp_path):
    spec = parse_spec({**SPEC, "staging": str(tmp_path / "staging")})
    staging = Staging(str(tmp_path / "staging"))
    stage(staging, "accounts", accounts(), quarantined=2)
    stage(staging, "orders", orders())
    facts = {t: source_facts(spec, t, staging) for t in ("accounts", "orders")}
    conn = psycopg.connect(pg_url, autocommit=True)
    load(conn, spec, "accounts", accounts())
    load(conn, spec, "orders", orders())
    yield spec, conn, facts
    conn.close()


def run(env, table="accounts") -> dict[str, r.CheckResult]:
    spec, conn, facts = env
    return {c.check: c for c in postgres_checks(conn, spec, table, facts[table])}


def failed(results: dict[str, r.CheckResult]) -> set[str]:
    return {name for name, c in results.items() if not c.passed}


def test_clean_load_passes_every_check(env):
    for table in ("accounts", "orders"):
        results = run(env, table)
        assert set(results) == set(r.POSTGRES_CHECKS)
        assert failed(results) == set(), [c.detail for c in results.values() if not c.passed]
    assert "source 302 = loaded 300 + quarantined 2" in run(env)[r.ROW_RECONCILIATION].detail


def test_one_changed_value_is_located_to_its_pk(env):
    env[1].execute("UPDATE core.accounts SET balance = balance + 0.01 WHERE id = 147")
    results = run(env)
    assert failed(results) == {r.CONTENT_HASH, r.COLUMN_AGGREGATES}
    assert results[r.CONTENT_HASH].failing_keys == [{"id": 147}]
    assert "id=147 (column balance)" in results[r.CONTENT_HASH].detail
    assert "balance: sum" in results[r.COLUMN_AGGREGATES].detail


def test_json_key_order_and_spacing_do_not_matter_but_values_do(env):
    conn = env[1]
    conn.execute("""UPDATE core.accounts SET meta = '{"a":[1.5,{"b":"x","yy":null}],  "zeta":1}' WHERE id = 2""")
    assert failed(run(env)) == set()
    conn.execute("""UPDATE core.accounts SET meta = '{"a":[1.50,{"b":"x","yy":null}],"zeta":1}' WHERE id = 2""")
    assert run(env)[r.CONTENT_HASH].failing_keys == [{"id": 2}]


def test_null_versus_empty_string_is_a_difference(env):
    env[1].execute("ALTER TABLE core.accounts ALTER COLUMN name DROP NOT NULL")
    env[1].execute("UPDATE core.accounts SET name = NULL WHERE id = 11")
    results = run(env)
    assert results[r.CONTENT_HASH].failing_keys == [{"id": 11}]
    assert "1 NULL(s) in name" in results[r.NOT_NULL].detail and results[r.NOT_NULL].failing_keys == [{"id": 11}]


def test_deleted_row_fails_reconciliation_and_is_named(env):
    env[1].execute("DELETE FROM core.accounts WHERE id = 42")
    results = run(env)
    assert {r.ROW_RECONCILIATION, r.CONTENT_HASH} <= failed(results)
    assert "1 row(s) missing" in results[r.ROW_RECONCILIATION].detail
    assert "id=42 (missing in target)" in results[r.CONTENT_HASH].detail


def test_orphan_fails_foreign_keys_naming_the_key(env):
    env[1].execute("UPDATE core.orders SET account_id = 99999 WHERE order_id = 17")
    results = run(env, "orders")
    assert r.FOREIGN_KEYS in failed(results)
    assert results[r.FOREIGN_KEYS].failing_keys == [{"order_id": 17, "account_id": 99999}]
    assert "1 orphan(s) in orders(account_id) → accounts(id): order_id=17, account_id=99999" in results[r.FOREIGN_KEYS].detail


def test_duplicate_pk_fails_primary_key(env):
    env[1].execute("INSERT INTO core.accounts SELECT * FROM core.accounts WHERE id = 5")
    results = run(env)
    assert {r.PRIMARY_KEY, r.ROW_RECONCILIATION, r.CONTENT_HASH} <= failed(results)
    assert results[r.PRIMARY_KEY].failing_keys == [{"id": 5}]
    assert "id=5 (2 copies in target)" in results[r.CONTENT_HASH].detail


def test_enforced_constraints_are_trusted(pg_url, tmp_path, env):
    spec, conn, facts = env
    conn.execute("ALTER TABLE core.accounts ADD PRIMARY KEY (id)")
    conn.execute("ALTER TABLE core.orders ADD PRIMARY KEY (order_id)")
    conn.execute("ALTER TABLE core.orders ADD FOREIGN KEY (account_id) REFERENCES core.accounts (id)")
    assert "enforced by constraint accounts_pkey" in run(env)[r.PRIMARY_KEY].detail
    assert failed(run(env, "orders")) == set()


def test_expectation_out_of_range_fails_as_warning_with_count(env):
    env[1].execute("UPDATE core.accounts SET amount = -5 WHERE id IN (3, 4)")
    res = run(env)[r.EXPECTATIONS]
    assert not res.passed and res.severity == "WARN"
    assert "amount between 0.0 and 1000.0: 2 unexpected (id=3; id=4)" in res.detail
    assert res.failing_keys == [{"id": 3}, {"id": 4}]


def test_a_process_without_great_expectations_runs_the_suites_in_its_gx_worker(env, pg_url):
    env[1].execute("UPDATE core.accounts SET amount = 2000 WHERE id = 5")
    script = ("import json, sys, psycopg\n"
              "from nova_pipeline.core.spec import parse_spec\n"
              "from nova_pipeline.validate.expectations import check_expectations, preload\n"
              f"spec = parse_spec({SPEC!r})\n"
              "preload(spec)\n"
              "with psycopg.connect(sys.argv[1]) as conn:\n"
              "    res = check_expectations(conn, spec, 'accounts', 'core', 'accounts')\n"
              "print(json.dumps([res.passed, res.detail, res.failing_keys, 'great_expectations' in sys.modules]))\n")
    done = subprocess.run([sys.executable, "-c", script, pg_url], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    passed, detail, keys, imported_here = json.loads(done.stdout.splitlines()[-1])
    assert not passed and "amount between 0.0 and 1000.0: 1 unexpected (id=5)" in detail and keys == [{"id": 5}]
    assert not imported_here  # the suite ran in the worker; this process never imported GX


def test_quarantine_beyond_tolerance_fails(env, tmp_path):
    spec, conn, facts = env
    strict = parse_spec({**SPEC, "tables": {**SPEC["tables"], "accounts": {**SPEC["tables"]["accounts"],
                                                                           "max_quarantined_rows": 1}}})
    res = {c.check: c for c in postgres_checks(conn, strict, "accounts", facts["accounts"])}
    assert failed(res) == {r.QUARANTINE_TOLERANCE}
    assert "2 row(s) quarantined > max_quarantined_rows 1; top reasons: amount: not a number ×2" in \
        res[r.QUARANTINE_TOLERANCE].detail


@pytest.mark.parametrize("primary_key", [["code", "day"], []], ids=["composite text key", "no key"])
def test_hashed_buckets_locate_rows_without_an_integer_key(pg_url, tmp_path, primary_key):
    spec = parse_spec({"source": {"sqlite": "x"}, "targets": {"postgres": {"schema": "core"}}, "tables": {"events": {
        "primary_key": primary_key, "columns": {"code": {"type": "varchar(8)"}, "day": {"type": "date"},
                                                "n": {"type": "bigint"}}}}})
    data = pa.table({"code": [f"c{i % 40}" for i in range(2000)],
                     "day": pa.array([i // 40 for i in range(2000)], pa.int32()).cast(pa.date32()),
                     "n": pa.array([i * 7 for i in range(2000)], pa.int64()),
                     "_nova_rowid": pa.array(range(1, 2001), pa.int64())})
    staging = Staging(str(tmp_path))
    stage(staging, "events", data)
    facts = source_facts(spec, "events", staging)
    assert facts["buckets"] == 2
    with psycopg.connect(pg_url, autocommit=True) as conn:
        load(conn, spec, "events", data)
        conn.execute("UPDATE core.events SET n = -1 WHERE code = 'c5' AND day = date '1970-01-02'")
        res = {c.check: c for c in postgres_checks(conn, spec, "events", facts)}
    assert {n for n, c in res.items() if not c.passed} == {r.CONTENT_HASH, r.COLUMN_AGGREGATES}
    if primary_key:
        assert res[r.CONTENT_HASH].failing_keys == [{"code": "c5", "day": "1970-01-02"}]
        assert "code='c5', day='1970-01-02' (column n)" in res[r.CONTENT_HASH].detail
    else:  # the changed row is missing in its original form (named by rowid) and present in a new one
        assert {"_nova_rowid": 46} in res[r.CONTENT_HASH].failing_keys
        assert "2 row(s) differ" in res[r.CONTENT_HASH].detail


def test_cached_facts_are_reused_until_a_staged_file_changes(tmp_path):
    from nova_pipeline.core.scan_cache import FactsStore
    from nova_pipeline.validate.source_facts import cached_source_facts

    spec = parse_spec({**SPEC, "staging": str(tmp_path / "staging")})
    staging = Staging(str(tmp_path / "staging"))
    stage(staging, "orders", orders())
    store = FactsStore(staging)
    first = cached_source_facts(spec, "orders", staging, facts=store)
    assert first == source_facts(spec, "orders", staging)
    assert cached_source_facts(spec, "orders", staging, facts=store) is first  # unchanged files: the same facts, not re-read
    assert cached_source_facts(spec, "orders", staging) == first  # another process: read from the stored file
    stage(staging, "orders", orders().slice(1))  # restaged (new files): read again
    again = cached_source_facts(spec, "orders", staging, facts=store)
    assert again is not first and again["clean_rows"] == N - 1


def test_the_scan_store_drops_its_least_recently_used_entries():
    from nova_pipeline.core.scan_cache import FactsStore

    scan_cache = FactsStore(None, max_entries=2)  # memory only
    scans = []

    def scan(v):
        return lambda: scans.append(v) or v

    assert scan_cache.remembered("a", 1, scan("a1")) == "a1"
    assert scan_cache.remembered("b", 1, scan("b1")) == "b1"
    assert scan_cache.remembered("a", 1, scan("a?")) == "a1"  # kept; "a" is now the most recently used
    scan_cache.remembered("c", 1, scan("c1"))  # drops "b"
    assert scan_cache.remembered("b", 1, scan("b2")) == "b2"
    assert scan_cache.remembered("c", 2, scan("c2")) == "c2"  # another stamp: scanned again
    assert scans == ["a1", "b1", "c1", "b2", "c2"]
