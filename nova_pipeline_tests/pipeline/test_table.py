"""pipeline.table: one table through export → transform → load in plain Python, no Dagster."""

import importlib
import sqlite3
import pytest

from nova_pipeline.core.run_context import RunContext
from nova_pipeline.core.spec import parse_spec
from nova_pipeline.extract import snapshot
from nova_pipeline.load import postgres_ddl
from nova_pipeline.pipeline.context import RunIds
from nova_pipeline.pipeline.table import CLEAN, RAW, TARGET, migrate_table
from nova_pipeline.validate.source_facts import cached_source_facts
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
    # The transform stored the facts the checks compare against: they are not read from staging again.
    sf = importlib.import_module("nova_pipeline.validate.source_facts")  # the module (the package exports the function)
    monkeypatch.setattr(sf, "source_facts", lambda *a, **k: pytest.fail("facts read again"))
    assert cached_source_facts(ctx.spec, "items", ctx.staging, facts=ctx.facts)["quarantined_rows"] == 1


def test_migrate_table_runs_only_the_phases_asked_for(ctx):
    assert [phase for phase, _ in migrate_table(ctx, "items", postgres=None, mongo=None, run=RunIds("r", "m"),
                                                phases=[RAW])] == [RAW]
    assert ctx.staging.row_count("raw", "items") == 10 and not ctx.staging.files("clean", "items")
