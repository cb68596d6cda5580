"""pipeline.table: one table through export → transform → load in plain Python, no Dagster."""

import importlib
import sqlite3
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import psycopg
import pytest

from nova_pipeline.core.run_context import RunContext
from nova_pipeline.core.spec import parse_spec
from nova_pipeline.extract import snapshot
from nova_pipeline.load import postgres_ddl
from nova_pipeline.pipeline.context import RunIds
from nova_pipeline.pipeline import source
from nova_pipeline.pipeline.table import CLEAN, RAW, TARGET, migrate_table, table_facts
from nova_pipeline.validate import facts_worker
from nova_pipeline_tests.pipeline.targets import Postgres


@pytest.fixture
def ctx(tmp_path):
    db = tmp_path / "app.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT, made DATETIME)")
        conn.executemany("INSERT INTO items (label, made) VALUES (?, ?)",
                         [(f"item {i}", "2024-05-01T10:00:00Z" if i != 3 else "not a time") for i in range(10)])
    spec = parse_spec({"source": {"sqlite": str(db)}, "staging": str(tmp_path / "staging"),
                       "tables": {"items": {"primary_key": ["id"], "columns": {
                           "id": {"type": "bigint"}, "label": {"type": "text"}, "made": {"type": "timestamptz"}}}}})
    ctx = RunContext.for_spec(spec)
    snapshot.take_snapshot(db, ctx.snapshot_path)
    return ctx


def test_migrate_table_runs_the_phases_in_order_and_loads_what_was_not_quarantined(ctx, pg_url, monkeypatch):
    pg = Postgres(pg_url)
    with pg.connect() as conn:
        postgres_ddl.create_tables(conn, ctx.spec)
        conn.commit()
    done = list(migrate_table(ctx, "items", postgres=pg, mongo=None, run=RunIds("run-1", "migration-1")))
    assert [phase for phase, _ in done] == [RAW, CLEAN, TARGET]
    exported, cleaned, loaded = (res for _, res in done)
    assert (exported.rows, cleaned.rows_in, cleaned.quarantined, loaded.rows) == (10, 10, 1, 9)
    assert loaded.where == {"table": "public.items"}
    with pg.connect() as conn:
        assert conn.execute("SELECT count(*) FROM public.items").fetchone()[0] == 9
    # The transform stored (or began, in the facts worker) the facts the checks compare against: the checks do
    # not read them from staging again.
    sf = importlib.import_module("nova_pipeline.validate.source_facts")  # the module (the package exports the function)
    monkeypatch.setattr(sf, "source_facts", lambda *a, **k: pytest.fail("facts read again"))
    assert table_facts(ctx, "items")["quarantined_rows"] == 1


def test_with_a_facts_worker_the_facts_are_computed_there_and_the_checks_wait_for_them(ctx, pg_url, monkeypatch):
    pg = Postgres(pg_url)
    with pg.connect() as conn:
        postgres_ddl.create_tables(conn, ctx.spec)
        conn.commit()
    facts_worker.start()
    sf = importlib.import_module("nova_pipeline.validate.source_facts")
    computed_here = []
    real = sf.source_facts
    monkeypatch.setattr(sf, "source_facts", lambda *a, **k: computed_here.append(a[1]) or real(*a, **k))
    done = dict(migrate_table(ctx, "items", postgres=pg, mongo=None, run=RunIds("run-1", "migration-1")))
    assert done[CLEAN].facts_seconds == 0 and set(ctx.pending_facts) == {"items"}
    facts = table_facts(ctx, "items")
    assert computed_here == [] and ctx.pending_facts == {}  # the worker's, read from the facts store
    assert facts == real(ctx.spec, "items", ctx.staging) and facts["quarantined_rows"] == 1


def test_facts_the_worker_failed_to_compute_are_computed_for_the_checks(ctx, monkeypatch):
    failed = Future()
    failed.set_exception(BrokenProcessPool("the worker died"))
    monkeypatch.setattr(facts_worker, "submit", lambda *a: failed)
    sf = importlib.import_module("nova_pipeline.validate.source_facts")
    computed_here, real = [], sf.source_facts
    monkeypatch.setattr(sf, "source_facts", lambda *a, **k: computed_here.append(a[1]) or real(*a, **k))
    list(migrate_table(ctx, "items", postgres=None, mongo=None, run=RunIds("r", "m"), phases=[RAW, CLEAN]))
    assert ctx.pending_facts == {"items": failed} and computed_here == []
    assert table_facts(ctx, "items")["clean_rows"] == 9 and computed_here == ["items"] and ctx.pending_facts == {}


def test_migrate_table_runs_only_the_phases_asked_for(ctx):
    assert [phase for phase, _ in migrate_table(ctx, "items", postgres=None, mongo=None, run=RunIds("r", "m"),
                                                phases=[RAW])] == [RAW]
    assert ctx.staging.row_count("raw", "items") == 10 and not ctx.staging.files("clean", "items")


@pytest.fixture
def many(tmp_path, pg_url, request):
    """A 200-row table read two rows a batch, its target created and holding one earlier row; the spec's
    on_bad_row is the test's parameter (default: quarantine)."""
    db = tmp_path / "many.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT, qty INTEGER)")
        conn.executemany("INSERT INTO items (label, qty) VALUES (?, ?)",
                         [(f"item {i}", i if i != 150 else 2 ** 40) for i in range(200)])  # 2**40: no integer
    spec = parse_spec({"source": {"sqlite": str(db)}, "staging": str(tmp_path / "staging"), "batch_rows": 2,
                       "on_bad_row": getattr(request, "param", "quarantine"), "tables": {"items": {"primary_key": ["id"], "columns": {
                           "id": {"type": "bigint"}, "label": {"type": "text"}, "qty": {"type": "integer"}}}}})
    ctx = RunContext.for_spec(spec)
    snapshot.take_snapshot(db, ctx.snapshot_path)
    pg = Postgres(pg_url)
    with pg.connect() as conn:
        postgres_ddl.create_tables(conn, spec)
        conn.execute("INSERT INTO public.items VALUES (-1, 'earlier', 0)")
        conn.commit()
    return ctx, pg


def _target_ids(pg) -> list[int]:
    with pg.connect() as conn:
        return [r[0] for r in conn.execute("SELECT id FROM public.items ORDER BY id")]


def test_an_unpartitioned_postgres_table_is_loaded_while_it_is_still_being_exported(many, monkeypatch):
    ctx, pg = many
    seen = []
    export_mod, load_mod = importlib.import_module("nova_pipeline.extract.export"), importlib.import_module(
        "nova_pipeline.load.postgres_load")
    to_raw, encode = export_mod._to_raw, load_mod._encode_batch
    monkeypatch.setattr(export_mod, "_to_raw", lambda *a: seen.append("read") or to_raw(*a))
    monkeypatch.setattr(load_mod, "_encode_batch", lambda *a: seen.append("sent") or encode(*a))
    done = dict(migrate_table(ctx, "items", postgres=pg, mongo=None, run=RunIds("r", "m")))
    assert (done[RAW].rows, done[CLEAN].rows_out, done[CLEAN].quarantined, done[TARGET].rows) == (200, 199, 1, 199)
    assert _target_ids(pg) == [i for i in range(1, 201) if i != 151]
    assert (ctx.staging.row_count("raw", "items"), ctx.staging.row_count("clean", "items"),
            ctx.staging.row_count("quarantine", "items")) == (200, 199, 1)
    # 100 batches read, with at most a few waiting between the phases: the first ones are sent long before the last
    # is read.
    assert seen.count("read") == 100 and seen.index("sent") < seen.index("read") + 10 < 50
    with pg.connect() as conn:
        assert conn.execute("SELECT count(*) FROM nova_meta.nova_quarantine WHERE table_name = 'items'").fetchone()[0] == 1


def test_a_failed_streamed_load_leaves_the_target_as_it_was_and_the_staged_files_complete(many, monkeypatch):
    ctx, pg = many
    load_mod = importlib.import_module("nova_pipeline.load.postgres_load")
    encode = load_mod._encode_column
    calls = []

    def fails_at_the_tenth_column(*a):
        calls.append(1)
        if len(calls) == 10:
            raise ValueError("cannot encode")
        return encode(*a)

    monkeypatch.setattr(load_mod, "_encode_column", fails_at_the_tenth_column)
    done = []
    with pytest.raises(load_mod.LoadError, match="load of 'items' failed: column .*cannot encode"):
        done.extend(migrate_table(ctx, "items", postgres=pg, mongo=None, run=RunIds("r", "m")))
    assert [phase for phase, _ in done] == [RAW, CLEAN]  # as when the phases run one after another
    assert (ctx.staging.row_count("raw", "items"), ctx.staging.row_count("clean", "items")) == (200, 199)
    assert _target_ids(pg) == [-1]


@pytest.mark.parametrize("many", ["fail"], indirect=True)
def test_a_failed_streamed_transform_stops_the_load_not_the_export(many):
    ctx, pg = many
    done = []
    with pytest.raises(Exception, match=r"items: column qty: key \{\"id\":151\}.*on_bad_row is 'fail'"):
        done.extend(migrate_table(ctx, "items", postgres=pg, mongo=None, run=RunIds("r", "m")))
    assert [phase for phase, _ in done] == [RAW]
    assert ctx.staging.row_count("raw", "items") == 200 and not ctx.staging.files("clean", "items")
    assert _target_ids(pg) == [-1]


def test_a_failed_streamed_export_stops_the_phases_after_it(many, monkeypatch):
    ctx, pg = many
    export_mod = importlib.import_module("nova_pipeline.extract.export")
    to_raw, calls = export_mod._to_raw, []

    def fails_at_the_thirtieth_batch(*a):
        calls.append(1)
        if len(calls) == 30:
            raise export_mod.ExportError("items: the source went away")
        return to_raw(*a)

    monkeypatch.setattr(export_mod, "_to_raw", fails_at_the_thirtieth_batch)
    done = []
    with pytest.raises(export_mod.ExportError, match="the source went away"):
        done.extend(migrate_table(ctx, "items", postgres=pg, mongo=None, run=RunIds("r", "m")))
    assert done == []
    assert not ctx.staging.files("raw", "items") and not ctx.staging.files("clean", "items")
    assert _target_ids(pg) == [-1]


def test_a_streamed_load_that_lost_its_connection_is_loaded_again_from_the_clean_files(many, monkeypatch):
    ctx, pg = many
    load_mod = importlib.import_module("nova_pipeline.load.postgres_load")
    load_once, handed_over = load_mod._load_once, []

    def connection_lost_while_streaming(*a):
        handed_over.append(a[-1] is not None)
        if a[-1] is not None:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return load_once(*a)

    monkeypatch.setattr(load_mod, "_load_once", connection_lost_while_streaming)
    done = dict(migrate_table(ctx, "items", postgres=pg, mongo=None, run=RunIds("r", "m")))
    assert handed_over == [True, False] and done[TARGET].rows == 199
    assert _target_ids(pg) == [i for i in range(1, 201) if i != 151]


@pytest.mark.parametrize("target, started", [("postgres", [True]), ("mongo", [])])
def test_an_in_process_snapshot_starts_the_facts_worker_only_for_postgresql_tables(tmp_path, monkeypatch, target,
                                                                                 started):
    db = tmp_path / "app.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT)")
    spec = parse_spec({"source": {"sqlite": str(db)}, "staging": str(tmp_path / "staging"),
                       "targets": {"mongo": {"uri": "mongomock://facts-worker", "database": "app"}},
                       "tables": {"items": {"target": target, "primary_key": ["id"]}}})
    calls = []
    monkeypatch.setattr(facts_worker, "start", lambda: calls.append(True))
    source.take_snapshot(RunContext.for_spec(spec), steps_here=True)
    assert calls == started
