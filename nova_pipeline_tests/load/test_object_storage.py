"""Scale-out: the migrate job under Dagster's multiprocess executor with staging on S3 (a local moto server).

Each step runs in its own process and finds the previous phase's Parquet only
through the object store, as workers on other machines would. mongomock lives
inside one process, so the spec here is PostgreSQL-only.
"""

import os
import socket
import sqlite3

import dagster as dg
import psycopg
import pyarrow.fs as pafs
import pytest
import yaml

from nova_pipeline.appschema import proposal
from nova_pipeline.orchestration.defs.assets import staging_of
from nova_pipeline.orchestration.defs.build import build_definitions
from nova_pipeline.orchestration.defs.resources import MongoResource, NovaConfig, PostgresResource
from nova_pipeline.core.spec import load_spec

moto_server = pytest.importorskip("moto.server")


def migrate_job_multiprocess() -> dg.JobDefinition:
    """The spec's `migrate` job with the multiprocess executor; module level so child processes rebuild it."""
    path = os.environ["NOVA_TEST_SPEC"]
    defs = build_definitions(load_spec(path), path)
    resources = {"nova": NovaConfig(spec_path=path), "postgres": PostgresResource(url_override=os.environ["NOVA_TEST_PG"]),
                 "mongo": MongoResource()}
    return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs, resources=resources,
                          executor=dg.multi_or_in_process_executor).resolve_job_def("migrate")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fix_moto_complete_multipart(monkeypatch) -> None:
    """moto 5.2.1 names the CompleteMultipartUpload reply's root element wrongly (getmoto/moto#10055), which
    pyarrow treats as an error embedded in a 200 OK; rename it to what S3 sends."""
    from moto.s3.responses import S3Response

    serialized = S3Response.serialized

    def fixed(self, result):
        status, headers, body = serialized(self, result)
        if self.data.get("Action") == "CompleteMultipartUpload" and isinstance(body, (str, bytes)):
            old, new = "CompleteMultipartUploadResponse", "CompleteMultipartUploadResult"
            body = body.replace(old, new) if isinstance(body, str) else body.replace(old.encode(), new.encode())
        return status, headers, body

    monkeypatch.setattr(S3Response, "serialized", fixed)


@pytest.fixture
def s3_endpoint(monkeypatch):
    _fix_moto_complete_multipart(monkeypatch)
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                 "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1",
                           allow_bucket_creation=True)
    fs.create_dir("stage")
    yield f"127.0.0.1:{port}"
    server.stop()


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
