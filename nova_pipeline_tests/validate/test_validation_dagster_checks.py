"""Dagster asset checks built from the spec: evaluations, blocking, and cached source facts."""

from __future__ import annotations

import dagster as dg
import psycopg
import pyarrow as pa
import pytest
import yaml

from nova_pipeline.orchestration.defs.assets import staging_of
from nova_pipeline.orchestration.defs.checks import build_table_checks
from nova_pipeline.orchestration.defs.resources import MongoResource, PostgresResource, nova_resource
from nova_pipeline.core.spec import load_spec
from nova_pipeline.core import results as r

TARGET = dg.AssetKey(["postgres", "public", "items"])
CLEAN = dg.AssetKey(["staging", "clean", "items"])
DATA = pa.table({"id": pa.array(range(1, 51), pa.int64()), "label": [f"item {i}" for i in range(50)],
                 "price": [i * 1.25 for i in range(50)], "_nova_rowid": pa.array(range(1, 51), pa.int64())})


@pytest.fixture
def setup(tmp_path, pg_url, mongo_uri):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "source": {"sqlite": "x.sqlite"}, "staging": "staging",
        "tables": {"items": {"primary_key": ["id"], "columns": {
            "id": {"type": "bigint"}, "label": {"type": "text"}, "price": {"type": "double precision"}}}}}))
    staging = staging_of(load_spec(spec_path))  # the source's area under the spec's staging root
    for kind in ("raw", "clean"):
        with staging.writer(kind, "items", DATA.schema) as w:
            w.write_table(DATA)
    resources = {"nova": nova_resource(str(spec_path)), "postgres": PostgresResource(url_override=pg_url),
                 "mongo": MongoResource(uri_override=mongo_uri)}
    return load_spec(spec_path), staging, resources, pg_url


def load_asset(pg_url: str, corrupt: bool = False) -> dg.AssetsDefinition:
    @dg.asset(key=TARGET)
    def items() -> None:
        with psycopg.connect(pg_url) as conn:
            conn.execute("DROP TABLE IF EXISTS items")
            conn.execute("CREATE TABLE items (id bigint, label text, price double precision)")
            with conn.cursor().copy("COPY items FROM STDIN") as copy:
                for row in DATA.drop_columns(["_nova_rowid"]).to_pylist():
                    copy.write_row(list(row.values()))
            if corrupt:
                conn.execute("UPDATE items SET label = 'tampered' WHERE id = 31")

    return items


def evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_clean_load_passes_every_check(setup):
    spec, _, resources, pg_url = setup
    checks = build_table_checks(spec, "items", TARGET)
    res = dg.materialize([load_asset(pg_url), *checks], resources=resources)
    ev = evaluations(res)
    assert set(ev) == set(r.POSTGRES_CHECKS)
    assert all(e.passed for e in ev.values()), {n: e.metadata["detail"].value for n, e in ev.items() if not e.passed}
    assert ev[r.ROW_RECONCILIATION].metadata["detail"].value == "source 50 = loaded 50 + quarantined 0"
    blocking = {s.name for c in checks for s in c.check_specs if s.blocking}
    assert blocking == {r.ROW_RECONCILIATION, r.PRIMARY_KEY, r.CONTENT_HASH, r.QUARANTINE_TOLERANCE}


def test_corrupted_value_fails_the_blocking_content_hash(setup):
    spec, _, resources, pg_url = setup
    downstream_ran = []

    @dg.asset(deps=[TARGET])
    def report() -> None:
        downstream_ran.append(True)

    res = dg.materialize([load_asset(pg_url, corrupt=True), *build_table_checks(spec, "items", TARGET), report],
                         resources=resources, raise_on_error=False)
    ev = evaluations(res)
    assert not res.success and not downstream_ran
    assert not ev[r.CONTENT_HASH].passed
    assert ev[r.CONTENT_HASH].metadata["failing_keys"].value == [{"id": 31}]
    assert "id=31 (column label)" in ev[r.CONTENT_HASH].metadata["detail"].value


def test_source_facts_come_from_the_facts_store(setup, monkeypatch):
    import importlib

    from nova_pipeline.core.scan_cache import FactsStore

    sf = importlib.import_module("nova_pipeline.validate.source_facts")  # the module (the package exports the function)

    spec, staging, resources, pg_url = setup
    sf.cached_source_facts(spec, "items", staging, facts=FactsStore(staging))  # as the transform step stores them
    monkeypatch.setattr(sf, "source_facts", lambda *a, **k: pytest.fail("the checks re-read the staged rows"))

    @dg.asset(key=CLEAN)
    def clean() -> None:
        pass

    res = dg.materialize([clean, load_asset(pg_url), *build_table_checks(spec, "items", TARGET)], resources=resources)
    assert all(e.passed for e in evaluations(res).values())
