"""RunContext and its facts store: what one process computed, another finds (local or object storage)."""

import os
import sqlite3
import time

import pytest

from nova_pipeline.core.run_context import RunContext
from nova_pipeline.core.scan_cache import FactsStore, file_identity
from nova_pipeline.core.spec import parse_spec
from nova_pipeline.core.staging import Staging
from nova_pipeline.extract import snapshot
from nova_pipeline_tests.s3_server import s3_endpoint  # noqa: F401  (fixture)


def _spec(tmp_path, staging: str):
    db = tmp_path / "src.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(10)])
    conn.close()
    return parse_spec({"source": {"sqlite": str(db)}, "staging": staging,
                       "targets": {"postgres": {"url": "postgresql://x@localhost/db", "schema": "core"}},
                       "tables": {"t": {"target": "postgres", "primary_key": ["id"]}}})


def test_facts_are_persisted_with_stamps_and_read_by_another_store(tmp_path):
    stg = Staging(str(tmp_path / "stg"))
    scans = []
    first = FactsStore(stg)
    assert first.remembered(("k", 1), "stamp-a", lambda: scans.append(1) or {"days": {1: (2, 3)}, "c": {"x"}}) \
        == {"days": {1: (2, 3)}, "c": {"x"}}
    other = FactsStore(stg)  # another process: nothing in memory
    assert other.remembered(("k", 1), "stamp-a", lambda: scans.append(2)) == {"days": {1: (2, 3)}, "c": {"x"}}
    assert scans == [1]
    assert other.remembered(("k", 1), "stamp-b", lambda: scans.append(3) or "new") == "new"  # stale: scanned again
    assert first.get(("k", 1), "stamp-b") == "new"  # the first store sees what the other wrote
    assert [p.name for p in (tmp_path / "stg" / "facts").iterdir()] and all(
        p.suffix == ".json" for p in (tmp_path / "stg" / "facts").iterdir())


def test_a_snapshot_is_stamped_by_its_sha256_wherever_it_lies(tmp_path):
    spec = _spec(tmp_path, str(tmp_path / "staging"))
    snap = snapshot.take_snapshot(tmp_path / "src.sqlite", tmp_path / "a" / "source.sqlite")
    os.makedirs(tmp_path / "b")
    for name in ("source.sqlite", "source.json"):
        (tmp_path / "b" / name).write_bytes((tmp_path / "a" / name).read_bytes())
    assert file_identity(tmp_path / "a" / "source.sqlite") == ("sha256", snap.sha256)
    assert file_identity(tmp_path / "b" / "source.sqlite") == ("sha256", snap.sha256)
    assert file_identity(tmp_path / "src.sqlite")[0] == str(tmp_path / "src.sqlite")  # a live file: mtime and size
    ctx = RunContext.for_spec(spec)
    ctx.facts.put_file(tmp_path / "a" / "source.sqlite", "classes", {"v": {"text"}})
    assert RunContext.for_spec(spec).facts.get_file(tmp_path / "b" / "source.sqlite", "classes") == {"v": {"text"}}


def test_the_profile_belongs_to_the_snapshot_it_was_computed_from(tmp_path):
    ctx = RunContext.for_spec(_spec(tmp_path, str(tmp_path / "staging")))
    assert ctx.profile() is None
    snapshot.take_snapshot(tmp_path / "src.sqlite", ctx.snapshot_path)
    ctx.save_profile({"rows_per_table": {"t": 10}})
    assert RunContext.for_spec(ctx.spec).profile() == {"rows_per_table": {"t": 10}}
    with sqlite3.connect(tmp_path / "src.sqlite") as conn:
        conn.execute("INSERT INTO t VALUES (99, 'new')")
    conn.close()
    time.sleep(0.01)
    snapshot.take_snapshot(tmp_path / "src.sqlite", ctx.snapshot_path)  # another copy: its profile is not known
    assert RunContext.for_spec(ctx.spec).profile() is None


def test_a_started_snapshot_is_held_by_its_context(tmp_path):
    ctx = RunContext.for_spec(_spec(tmp_path, str(tmp_path / "staging")))
    other = RunContext.for_spec(ctx.spec)
    with snapshot.started_snapshot(tmp_path / "src.sqlite", ctx.snapshot_path, ctx.pending_snapshots):
        assert ctx.pending_snapshots and not other.pending_snapshots
        snap = snapshot.take_snapshot(tmp_path / "src.sqlite", ctx.snapshot_path, ctx.pending_snapshots)
    assert snap.ok and not ctx.pending_snapshots


def test_a_snapshot_on_object_storage_is_published_and_fetched_by_another_machine(tmp_path, s3_endpoint):  # noqa: F811
    spec = _spec(tmp_path, f"s3://stage/nova?endpoint_override={s3_endpoint}&scheme=http")
    ctx = RunContext.for_spec(spec)
    assert ctx.remote and ctx.snapshot_location.startswith("s3://stage/nova/src-")
    assert not str(ctx.snapshot_path).startswith(os.getcwd())  # this machine's copy: not in the working directory
    with pytest.raises(FileNotFoundError, match="no snapshot at s3://"):
        ctx.local_snapshot()
    snap = snapshot.take_snapshot(tmp_path / "src.sqlite", ctx.snapshot_path)
    ctx.publish_snapshot()
    assert ctx.snapshot_identity()["sha256"] == snap.sha256

    for name in ("source.sqlite", "source.json"):  # another machine: no local copy
        (ctx.snapshot_path.parent / name).unlink()
    fetched = RunContext.for_spec(spec).local_snapshot()
    assert snapshot.sha256_file(fetched) == snap.sha256
    assert file_identity(fetched) == ("sha256", snap.sha256)
    mtime = fetched.stat().st_mtime_ns
    assert RunContext.for_spec(spec).local_snapshot() == fetched and fetched.stat().st_mtime_ns == mtime  # not again
