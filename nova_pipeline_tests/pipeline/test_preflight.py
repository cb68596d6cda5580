"""pipeline.preflight: what a migration checks before it writes anything, from its run context."""

import sqlite3
from contextlib import ExitStack

import pytest

from nova_pipeline.core import connections, target_state
from nova_pipeline.core.run_context import RunContext
from nova_pipeline.core.spec import parse_spec
from nova_pipeline.extract.snapshot import SourceError
from nova_pipeline.pipeline import preflight


def _ctx(tmp_path, target="postgres", targets=None):
    db = tmp_path / "app.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO users (name) VALUES (?)", [("a",), ("b",)])
    return RunContext.for_spec(parse_spec({"source": {"sqlite": str(db)}, "staging": str(tmp_path / "staging"),
                                           "targets": targets or {},
                                           "tables": {"users": {"target": target, "primary_key": ["id"]}}}))


def test_the_context_holds_the_resolved_source_and_area(tmp_path):
    ctx = _ctx(tmp_path)
    assert ctx.source == tmp_path / "app.sqlite"
    assert ctx.snapshot_path == ctx.area / "snapshot" / "source.sqlite"
    assert str(ctx.area) == ctx.staging.uri


def test_check_inputs_names_a_missing_source_unless_resuming(tmp_path):
    ctx = _ctx(tmp_path)
    ctx.source.unlink()
    with pytest.raises(SourceError, match="app.sqlite"):
        preflight.check_inputs(ctx)
    preflight.check_inputs(ctx, resume=True)  # a resume reads its snapshot, not the source


def test_clear_targets_holds_the_lock_and_refuses_changed_tables_unless_forced(tmp_path, pg_url):
    ctx = _ctx(tmp_path)
    with ExitStack() as stack:
        cleared = preflight.clear_targets(ctx, stack, pg_url, None)
        assert (cleared.postgres_url, cleared.mongo_uri, cleared.notes) == (pg_url, None, [])
        assert cleared.lock is not None and cleared.lock.lost() is None
    with connections.connect_postgres(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.users (id bigint PRIMARY KEY, name text)")
        conn.execute("INSERT INTO public.users VALUES (1, 'not by nova')")
    with ExitStack() as stack, pytest.raises(target_state.TargetChanged, match="users"):
        preflight.clear_targets(ctx, stack, pg_url, None)
    with ExitStack() as stack:
        cleared = preflight.clear_targets(ctx, stack, pg_url, None, force=True)
        assert cleared.notes and cleared.notes[0].startswith("--force: replaced target tables changed")


def test_resolve_targets_needs_a_mongodb_for_mongo_tables(tmp_path, monkeypatch):
    monkeypatch.delenv("NOVA_MONGO_URI", raising=False)
    ctx = _ctx(tmp_path, target="mongo", targets={"mongo": {"database": "app"}})
    with pytest.raises(connections.TargetUnreachable, match="no MongoDB configured"):
        preflight.resolve_targets(ctx.spec, None, None)
    assert preflight.resolve_targets(ctx.spec, None, None, mock_mongo_fallback=True) == (None, "mongomock://nova-demo")
