"""Scale-out: the migrate job under Dagster's multiprocess executor with staging on S3 (a local moto server).

Each step runs in its own process and finds the previous phase's Parquet only
through the object store, as workers on other machines would. mongomock lives
inside one process, so the spec here is PostgreSQL-only.
"""

import os
import sqlite3

import dagster as dg
import psycopg
import yaml

from nova_pipeline.appschema import proposal
from nova_pipeline.orchestration.defs.assets import staging_of
from nova_pipeline.orchestration.defs.build import build_definitions
from nova_pipeline.orchestration.defs.resources import MongoResource, PostgresResource, nova_resource
from nova_pipeline.core.spec import load_spec

from nova_pipeline_tests.s3_server import s3_endpoint  # noqa: F401  (fixture)


def migrate_job_multiprocess() -> dg.JobDefinition:
    """The spec's `migrate` job with the multiprocess executor; module level so child processes rebuild it."""
    path = os.environ["NOVA_TEST_SPEC"]
    defs = build_definitions(load_spec(path), path)
    resources = {"nova": nova_resource(path), "postgres": PostgresResource(url_override=os.environ["NOVA_TEST_PG"]),
                 "mongo": MongoResource()}
    return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs, resources=resources,
                          executor=dg.multi_or_in_process_executor).resolve_job_def("migrate")


def _source(path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE people (id INTEGER PRIMARY KEY, team_id INTEGER REFERENCES teams(id), email TEXT,
                             joined DATETIME, score REAL);
    """)
    conn.executemany("INSERT INTO teams VALUES (?, ?)", [(i, f"team {i}") for i in range(1, 6)])
    conn.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?)",
                     [(i, i % 5 + 1, f"p{i}@x.io", f"2024-01-{i % 28 + 1:02d}T10:00:00Z", i / 7) for i in range(1, 301)])
    conn.commit()
    conn.close()
    return {"teams": 5, "people": 300}


def test_migrate_job_runs_multiprocess_with_s3_staging(tmp_path, monkeypatch, s3_endpoint, pg_url):
    counts = _source(tmp_path / "src.sqlite")
    proposed, _ = proposal.propose_spec(tmp_path / "src.sqlite", postgres_schema="public")
    proposed["source"]["sqlite"] = "src.sqlite"
    proposed["staging"] = f"s3://stage/nova?endpoint_override={s3_endpoint}&scheme=http"
    proposed["reports"] = str(tmp_path / "reports")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(proposed))
    monkeypatch.chdir(tmp_path)  # the SQLite snapshot of an object-store staging lives under ./data/.nova
    monkeypatch.setenv("NOVA_TEST_SPEC", str(spec_path))
    monkeypatch.setenv("NOVA_TEST_PG", pg_url)

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = job = dg.build_reconstructable_job(__name__, migrate_job_multiprocess.__name__,
                                           reconstructor_working_directory=os.path.dirname(__file__))
        result = dg.execute_job(job, instance=instance,
                                run_config={"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}})
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        step_pids = {e.pid for e in result.all_events if e.is_step_start}
        assert len(step_pids) > 1 and os.getpid() not in step_pids  # steps ran in worker processes

    staging = staging_of(load_spec(spec_path))  # the source's area under the staging URI
    for table, n in counts.items():
        assert staging.files("raw", table) and staging.files("clean", table)
        assert staging.row_count("clean", table) == n
    assert not os.path.exists(tmp_path / "staging")  # nothing went to a local staging directory
    with psycopg.connect(pg_url) as conn:
        for table, n in counts.items():
            assert conn.execute(f"SELECT count(*) FROM public.{table}").fetchone()[0] == n
        assert conn.execute("SELECT count(*) FROM public.people p JOIN public.teams t ON t.id = p.team_id"
                            ).fetchone()[0] == 300
