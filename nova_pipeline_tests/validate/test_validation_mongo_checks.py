"""MongoDB checks against source facts on the mongomock double: counts, embedded arrays, field aggregates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from bson.decimal128 import Decimal128

from nova_pipeline.core.connections import mongo_client
from nova_pipeline.core.spec import parse_spec
from nova_pipeline.core.staging import Staging
from nova_pipeline.core import results as r
from nova_pipeline.validate.mongo_checks import mongo_checks
from nova_pipeline.validate.source_facts import source_facts

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
SPEC = {
    "source": {"sqlite": "x.sqlite"},
    "targets": {"postgres": None, "mongo": {"database": "logs"}},
    "tables": {
        "users": {"target": "mongo", "primary_key": ["id"], "columns": {
            "id": {"type": "bigint"}, "name": {"type": "text"}, "score": {"type": "double precision"},
            "seen": {"type": "timestamptz"}, "balance": {"type": "numeric(10,2)"}, "vip": {"type": "boolean"}},
            "embed": [{"table": "logins", "on": "user_id", "as": "logins"}]},
        "logins": {"target": "mongo", "primary_key": ["login_id"], "columns": {
            "login_id": {"type": "integer"}, "user_id": {"type": "bigint"}, "ok": {"type": "boolean"}}},
    },
}
USERS = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["ann", "", None],
                  "score": [1.5, -2.25, None],
                  "seen": pa.array([T0, T0 + timedelta(microseconds=1500), None], pa.timestamp("us", "UTC")),
                  "balance": ["10.50", None, "-3.00"], "vip": [True, False, True],
                  "_nova_rowid": pa.array([1, 2, 3], pa.int64())})
LOGINS = pa.table({"login_id": pa.array([10, 11, 12, 13], pa.int32()), "user_id": pa.array([1, 1, 2, 99], pa.int64()),
                   "ok": [True, False, True, True], "_nova_rowid": pa.array([1, 2, 3, 4], pa.int64())})


def documents() -> list[dict]:
    logins = {1: [{"login_id": 10, "user_id": 1, "ok": True}, {"login_id": 11, "user_id": 1, "ok": False}],
              2: [{"login_id": 12, "user_id": 2, "ok": True}], 3: []}
    return [{"_id": u["id"], "name": u["name"], "score": u["score"], "seen": u["seen"],
             "balance": Decimal128(u["balance"]) if u["balance"] else None, "vip": u["vip"], "logins": logins[u["id"]]}
            for u in USERS.to_pylist()]


@pytest.fixture
def env(tmp_path, mongo_uri):
    spec = parse_spec(SPEC)
    staging = Staging(str(tmp_path))
    for name, data in (("users", USERS), ("logins", LOGINS)):
        for kind in ("raw", "clean"):
            with staging.writer(kind, name, data.schema) as w:
                w.write_table(data)
    facts = {t: source_facts(spec, t, staging) for t in ("users", "logins")}
    db = mongo_client(mongo_uri)["logs"]
    db.users.insert_many(documents())
    return spec, db, facts


def run(env, table: str) -> dict[str, r.CheckResult]:
    spec, db, facts = env
    return {c.check: c for c in mongo_checks(db, spec, table, facts[table])}


def test_clean_load_passes_and_validator_is_reported_unverified_on_mongomock(env):
    for table in ("users", "logins"):
        results = run(env, table)
        assert set(results) == set(r.MONGO_CHECKS)
        bad = {c.check: c.detail for c in results.values() if not c.passed}
        if table == "users":
            assert set(bad) == {r.VALIDATOR_COMPLIANCE} and "not verified" in bad[r.VALIDATOR_COMPLIANCE]
            assert results[r.VALIDATOR_COMPLIANCE].severity == "WARN"
        else:
            assert bad == {}
    assert "3 embedded, expected 3 (clean rows 4, orphans 1)" in run(env, "logins")[r.DOCUMENT_COUNT].detail


def test_missing_document_and_changed_field_fail(env):
    env[1].users.delete_one({"_id": 3})
    env[1].users.update_one({"_id": 1}, {"$set": {"score": 9.0}})
    results = run(env, "users")
    assert not results[r.DOCUMENT_COUNT].passed and "1 missing" in results[r.DOCUMENT_COUNT].detail
    assert "score: max -2.25 → 9.0" not in results[r.COLUMN_AGGREGATES].detail
    assert "score: max 1.5 → 9.0, sum -0.75 → 6.75" in results[r.COLUMN_AGGREGATES].detail


def test_dropped_embedded_child_fails_count(env):
    env[1].users.update_one({"_id": 1}, {"$pop": {"logins": 1}})
    results = run(env, "logins")
    assert not results[r.DOCUMENT_COUNT].passed
    assert "2 embedded, expected 3" in results[r.DOCUMENT_COUNT].detail
    assert "login_id: count 3 → 2" in results[r.COLUMN_AGGREGATES].detail


def test_timestamps_compare_at_bson_millisecond_precision(env):
    env[1].users.update_one({"_id": 2}, {"$set": {"seen": T0 + timedelta(milliseconds=2)}})
    assert "seen: max" in run(env, "users")[r.COLUMN_AGGREGATES].detail
