"""Smoke tests: expected results, latency budgets, read-only execution."""

import psycopg

from nova_pipeline.core import connections
from nova_pipeline.validate import smoke
from nova_pipeline.core.spec import SmokeTest


def test_postgres_smoke_tests_judge_rows_values_and_budget(pg_url):
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE t (id int)")
        conn.execute("INSERT INTO t SELECT generate_series(1, 5)")
        conn.commit()
        ok = smoke.run_postgres_test(conn, SmokeTest(name="all", sql="SELECT id FROM t", expect_rows=5, max_ms=5000))
        wrong = smoke.run_postgres_test(conn, SmokeTest(name="sum", sql="SELECT sum(id) FROM t", expect_value=16))
        slow = smoke.run_postgres_test(conn, SmokeTest(name="slow", sql="SELECT pg_sleep(0.05)", max_ms=1))
        broken = smoke.run_postgres_test(conn, SmokeTest(name="bad", sql="SELECT nope FROM t"))
        writes = smoke.run_postgres_test(conn, SmokeTest(name="w", sql="DELETE FROM t RETURNING id"))
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 5
    assert ok.passed and ok.rows == 5
    assert not wrong.passed and "expected value 16, got 15" in wrong.detail and wrong.as_check()["severity"] == "ERROR"
    assert not slow.passed and slow.as_check()["severity"] == "WARN"
    assert not broken.passed and "query failed" in broken.detail
    assert not writes.passed and "read-only" in writes.detail


def test_mongo_smoke_tests_count_and_aggregate(mongo_uri):
    db = connections.mongo_client(mongo_uri)["d"]
    db["logs"].insert_many([{"a": "x"}, {"a": "x"}, {"a": "y"}])
    found = smoke.run_mongo_test(db, SmokeTest(name="x", target="mongo", collection="logs", find={"a": "x"}, expect_rows=2))
    grouped = smoke.run_mongo_test(db, SmokeTest(name="g", target="mongo", collection="logs", expect_rows=2,
                                                 aggregate=[{"$group": {"_id": "$a", "n": {"$sum": 1}}}]))
    assert found.passed and found.value == 2
    assert grouped.passed and grouped.rows == 2
