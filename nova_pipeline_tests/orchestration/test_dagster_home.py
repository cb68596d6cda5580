"""The Dagster instance the CLI records its runs in: a DAGSTER_HOME the user set up is honoured as its
dagster.yaml configures it (PostgreSQL storage included) and never written; only without DAGSTER_HOME is the
default home created (issue 18)."""

from __future__ import annotations

import sqlite3

import dagster as dg
import psycopg
import yaml
from click.testing import CliRunner
from dagster_graphql.schema.pipelines.pipeline import GrapheneRun

from nova_pipeline.appschema import proposal
from nova_pipeline.cli.main import main
from nova_pipeline.orchestration import code_location, dagster_storage


def _spec(folder) -> str:
    conn = sqlite3.connect(folder / "src.sqlite")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    conn.executemany("INSERT INTO users (name) VALUES (?)", [(f"u{i}",) for i in range(20)])
    conn.commit()
    conn.close()
    proposed, _ = proposal.propose_spec(folder / "src.sqlite")
    (folder / "spec.yaml").write_text(yaml.safe_dump(proposed))
    return str(folder / "spec.yaml")


def test_runs_are_recorded_in_the_postgres_storage_of_the_users_dagster_home(tmp_path, pg_url, make_pg_url,
                                                                            monkeypatch):
    # The URL form Dagster documents (a plain postgresql://: SQLAlchemy 2.1 would pick psycopg 3 for it, on which
    # dagster-postgres's NOTIFY fails; pyproject keeps SQLAlchemy below 2.1).
    instance_url = make_pg_url()
    home = tmp_path / "home"
    home.mkdir()
    user_yaml = (f"# the user's own instance\nstorage:\n  postgres:\n    postgres_url: \"{instance_url}\"\n"
                 "telemetry:\n  enabled: false\n").encode()
    (home / "dagster.yaml").write_bytes(user_yaml)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.chdir(tmp_path)  # a dagster.yaml in the working directory must not replace the user's either
    (tmp_path / "dagster.yaml").write_text(dagster_storage.INSTANCE_YAML)

    res = CliRunner().invoke(main, ["migrate", "--spec", _spec(tmp_path), "--postgres-url", pg_url, "--no-backup",
                                    "--report", str(tmp_path / "report.json")], catch_exceptions=False)
    assert res.exit_code == 0, res.output

    assert (home / "dagster.yaml").read_bytes() == user_yaml
    with psycopg.connect(instance_url) as conn:
        recorded = {(job, status) for job, status in conn.execute("SELECT pipeline_name, status FROM runs")}
    assert ("migrate", "SUCCESS") in recorded
    reader = dg.DagsterInstance.from_config(str(home))
    assert {r.job_name for r in reader.get_runs()} >= {"migrate"}
    # The UI's overview timeline leaves out runs whose GraphQL `repositoryOrigin` is empty: CLI runs carry the
    # code location's, as those launched from the UI do.
    for record in reader.get_run_records():
        origin = GrapheneRun(record).resolve_repositoryOrigin(None)
        assert origin is not None, record.dagster_run.job_name
        served = (origin.resolve_repository_location_name(None), origin.resolve_repository_name(None))
        assert served == (code_location.CODE_LOCATION, "__repository__")
    assert not list(home.rglob("*.db"))  # nothing went to Dagster's SQLite files


def test_a_dagster_home_without_dagster_yaml_is_used_as_it_is(tmp_path, monkeypatch):
    home = tmp_path / "bare"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dagster.yaml").write_text(dagster_storage.INSTANCE_YAML)
    instance = dagster_storage.dagster_instance()
    assert not (home / "dagster.yaml").exists()
    assert not isinstance(instance.event_log_storage, dagster_storage.PooledSqliteEventLogStorage)  # Dagster's default


def test_without_dagster_home_the_default_home_is_created_with_the_packaged_yaml(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.chdir(tmp_path)
    instance = dagster_storage.dagster_instance()
    home = tmp_path / dagster_storage.DEFAULT_DAGSTER_HOME
    assert (home / "dagster.yaml").read_text() == dagster_storage.INSTANCE_YAML
    assert isinstance(instance.event_log_storage, dagster_storage.PooledSqliteEventLogStorage)
    assert instance.get_settings("telemetry") == {"enabled": False}
