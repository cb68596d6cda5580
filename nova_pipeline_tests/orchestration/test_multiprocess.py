"""Runs that span processes: `migrate --executor multiprocess` with staging and snapshot on S3 (a local moto
server) and the Dagster instance in PostgreSQL (dagster-postgres, from the user's DAGSTER_HOME).

The CLI runs in a subprocess whose working directory is an empty directory; every step runs in its own
process (Dagster's multiprocess executor), and STEP_DIRS_HOOK gives each step process, as it is forked, a new
empty working and temporary directory of its own: a step finds what earlier steps left only through the
object store and the run context rebuilt from the spec file, as on another machine. Afterwards the working
directory is still empty.
"""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing

import psycopg
import pytest
import yaml

from nova_pipeline.appschema import proposal
from nova_pipeline.core.run_context import RunContext
from nova_pipeline.core.spec import load_spec
from nova_pipeline_tests.s3_server import s3_endpoint  # noqa: F401  (fixture)

TABLES = {"teams": "id, name", "people": "id, team_id, email, score", "events": "id, person_id, kind, n"}


def _source(path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript("""
            CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
            CREATE TABLE people (id INTEGER PRIMARY KEY, team_id INTEGER REFERENCES teams(id), email TEXT, score REAL);
            CREATE TABLE events (id INTEGER PRIMARY KEY, person_id INTEGER REFERENCES people(id), kind TEXT, n INTEGER);
        """)
        conn.executemany("INSERT INTO teams VALUES (?, ?)", [(i, f"team {i}") for i in range(1, 7)])
        conn.executemany("INSERT INTO people VALUES (?, ?, ?, ?)",
                         [(i, i % 6 + 1, f"p{i}@x.io" if i % 7 else None, i / 7) for i in range(1, 901)])
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?)",
                         [(i, i % 900 + 1, ("open", "close", "édit")[i % 3], i * 3) for i in range(1, 2501)])
        conn.commit()


# Loaded by every interpreter of the run (PYTHONPATH); in the forkserver it registers a hook that moves each
# forked step process into a fresh directory under NOVA_TEST_STEP_DIRS (cwd, TMPDIR and tempfile's cache).
STEP_DIRS_HOOK = """
import os, tempfile
if os.environ.get("NOVA_TEST_STEP_DIRS"):
    def _own_directories():
        here = tempfile.mkdtemp(prefix="step-", dir=os.environ["NOVA_TEST_STEP_DIRS"])
        os.chdir(here)
        os.environ["TMPDIR"] = tempfile.tempdir = here
    os.register_at_fork(after_in_child=_own_directories)
"""


def _digest(rows) -> str:
    return hashlib.sha256(json.dumps(sorted(rows, key=repr), default=str).encode()).hexdigest()


def _source_content(path) -> dict[str, tuple[int, str]]:
    with closing(sqlite3.connect(path)) as conn:
        return {t: (conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0],
                    _digest([list(r) for r in conn.execute(f"SELECT {cols} FROM {t}")])) for t, cols in TABLES.items()}


def _target_content(url: str) -> dict[str, tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return {t: (conn.execute(f"SELECT count(*) FROM public.{t}").fetchone()[0],
                    _digest([list(r) for r in conn.execute(f"SELECT {cols} FROM public.{t}")]))
                for t, cols in TABLES.items()}


@pytest.fixture
def setup(tmp_path, s3_endpoint, pg_url, make_pg_url):  # noqa: F811
    _source(tmp_path / "src.sqlite")
    proposed, _ = proposal.propose_spec(tmp_path / "src.sqlite", postgres_schema="public")
    proposed["source"]["sqlite"] = str(tmp_path / "src.sqlite")
    proposed["staging"] = f"s3://stage/nova?endpoint_override=http://{s3_endpoint}&scheme=http"
    proposed["reports"] = str(tmp_path / "reports")
    proposed["keep_staging"] = True  # to look at the object store afterwards
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(proposed))
    home, work, steps, hook = (tmp_path / d for d in ("home", "work", "steps", "hook"))
    for d in (home, work, steps, hook):
        d.mkdir()
    (hook / "sitecustomize.py").write_text(STEP_DIRS_HOOK)
    instance_url = make_pg_url()
    (home / "dagster.yaml").write_text(  # dagster-postgres with the psycopg2 driver (VERIFIED.md §9)
        f"storage:\n  postgres:\n    postgres_url: \"{instance_url.replace('postgresql://', 'postgresql+psycopg2://', 1)}\"\n"
        "telemetry:\n  enabled: false\n")
    return {"spec": str(spec_path), "home": home, "work": work, "steps": steps, "hook": hook,
            "instance_url": instance_url, "pg_url": pg_url, "tmp": tmp_path}


def _migrate(setup, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(setup["home"]), "DAGSTER_DISABLE_TELEMETRY": "1",
           "NOVA_TEST_STEP_DIRS": str(setup["steps"]),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(setup["hook"]), os.environ.get("PYTHONPATH")]))}
    env.pop("NOVA_EXECUTOR", None)
    return subprocess.run([sys.executable, "-m", "nova_pipeline.cli.main", "migrate", "--spec", setup["spec"],
                           "--postgres-url", setup["pg_url"], *args], cwd=setup["work"], env=env,
                          capture_output=True, text=True, timeout=600)


def test_migrate_multiprocess_with_s3_staging_and_postgres_instance(setup):
    done = _migrate(setup, "--executor", "multiprocess", "--no-backup")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    assert _target_content(setup["pg_url"]) == _source_content(setup["tmp"] / "src.sqlite")
    assert list(setup["work"].iterdir()) == []  # no staging, no snapshot, nothing in the working directory

    with psycopg.connect(setup["instance_url"]) as conn:  # runs recorded in the instance's PostgreSQL
        (run_id, tags), = conn.execute("SELECT run_id, run_body::json->'tags' FROM runs "
                                       "WHERE pipeline_name = 'migrate'").fetchall()
        pids = {int(p) for (p,) in conn.execute(
            "SELECT event::json->'dagster_event'->>'pid' FROM event_logs WHERE run_id = %s "
            "AND dagster_event_type = 'STEP_START'", (run_id,))}
    assert tags["nova/executor"] == "multiprocess"
    assert len(pids) > 3  # each step in its own process
    step_dirs = list(setup["steps"].iterdir())
    assert len(step_dirs) >= len(pids)  # ... each in its own working and temporary directory
    assert any((d / "nova-pipeline" / "staging").is_dir() for d in step_dirs)  # where steps fetched the snapshot

    ctx = RunContext.for_spec(load_spec(setup["spec"]))
    assert ctx.snapshot_location == f"s3://{ctx.staging.root}/snapshot/source.sqlite"  # beside staging
    assert ctx.staging.fs.get_file_info(ctx.snapshot_location.split("://", 1)[1]).size > 0
    assert ctx.snapshot_identity()["source"] == str(setup["tmp"] / "src.sqlite")
    for table, (n, _) in _source_content(setup["tmp"] / "src.sqlite").items():
        assert ctx.staging.row_count("clean", table) == n


def test_the_executor_can_be_chosen_by_environment_and_mongomock_forces_in_process(setup, monkeypatch):
    from nova_pipeline.core.spec import parse_spec
    from nova_pipeline.orchestration.executors import executor_name

    spec = load_spec(setup["spec"])
    monkeypatch.setenv("NOVA_EXECUTOR", "multiprocess")
    assert executor_name(spec) == "multiprocess"
    assert executor_name(spec, "in_process") == "in_process"
    mongo = parse_spec({"source": {"sqlite": "x.sqlite"}, "targets": {"mongo": {"uri": "mongomock://t", "database": "d"}},
                        "tables": {"logs": {"target": "mongo"}}})
    assert executor_name(mongo, "multiprocess") == "in_process"
    monkeypatch.setenv("NOVA_EXECUTOR", "threads")
    with pytest.raises(ValueError, match="NOVA_EXECUTOR='threads': use one of in_process, multiprocess"):
        executor_name(spec)



def test_the_code_location_takes_its_executor_from_nova_executor(setup, monkeypatch):
    from click.testing import CliRunner

    from nova_pipeline.cli.main import main
    from nova_pipeline.orchestration.defs.build import build_definitions

    spec = load_spec(setup["spec"])
    monkeypatch.setenv("NOVA_EXECUTOR", "multiprocess")
    assert build_definitions(spec, setup["spec"]).resolve_job_def("migrate").executor_def.name == "multiprocess"
    monkeypatch.delenv("NOVA_EXECUTOR")
    assert build_definitions(spec, setup["spec"]).resolve_job_def("migrate").executor_def.name == "in_process"
    assert "mongomock targets run in_process" in " ".join(CliRunner().invoke(main, ["migrate", "--help"]).output.split())
