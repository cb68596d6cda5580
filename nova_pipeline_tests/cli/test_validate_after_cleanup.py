"""`validate` after a successful migration removed its plaintext staging, and against a target without the tables."""

import psycopg

from nova_pipeline_tests.core.test_retention import PLAINTEXT, _area, _folders
from nova_pipeline_tests.orchestration.test_failures import dagster_home  # noqa: F401  (fixture)
from nova_pipeline_tests.orchestration.test_run_faults import cli, migrate, spec_for


def _validate(spec, url):
    return cli("validate", "--spec", str(spec), "--postgres-url", url)


def test_validate_stages_the_source_afresh_when_the_migration_removed_its_staging(tmp_path, pg_url, dagster_home):
    spec = spec_for(tmp_path, "a", ["a1", "a2"])
    assert migrate(spec, pg_url).exit_code == 0
    assert not _folders(spec) & PLAINTEXT
    quarantine = sorted(p.read_bytes() for p in (_area(spec) / "quarantine").rglob("*") if p.is_file())

    res = _validate(spec, pg_url)
    assert res.exit_code == 0, res.output
    assert "checking the targets against a new snapshot of the source" in res.output
    assert " 0 failed" in res.output
    assert not _folders(spec) & PLAINTEXT  # the fresh staging was temporary
    assert sorted(p.read_bytes() for p in (_area(spec) / "quarantine").rglob("*") if p.is_file()) == quarantine

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE public.items SET name = name || '!' WHERE id = (SELECT min(id) FROM public.items)")
    res = _validate(spec, pg_url)
    assert res.exit_code == 1 and "FAIL items" in res.output, res.output


def test_validate_against_a_target_without_the_tables_is_one_line_exit_2(tmp_path, make_pg_url, dagster_home):
    spec = spec_for(tmp_path, "a", ["a1"])
    res = _validate(spec, make_pg_url())
    assert res.exit_code == 2, res.output
    line, = res.output.strip().splitlines()
    assert line.startswith("nova-pipeline: ") and '"public"."items"' in line and "run `nova-pipeline migrate` first" in line
