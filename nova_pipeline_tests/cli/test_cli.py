"""CLI contract: one-line errors with exit code 2, dry-run plan, report, doctor."""

import json
import sqlite3

import pytest
from click.testing import CliRunner

from nova_pipeline.cli.main import main


@pytest.fixture
def small_db(tmp_path):
    db = tmp_path / "app.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript("""
            CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, created DATETIME);
            CREATE TABLE events (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), at DATETIME);
            INSERT INTO users VALUES (1, 'a@x.io', '2024-01-01 10:00:00'), (2, 'b@x.io', 1704103200);
            INSERT INTO events VALUES (1, 1, '2024-01-02T00:00:00Z');
        """)
    return db


@pytest.fixture
def spec_file(tmp_path, small_db):
    out = tmp_path / "app.yaml"
    res = CliRunner().invoke(main, ["init", "--source", str(small_db), "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def test_init_writes_spec_and_type_report(spec_file):
    text = spec_file.read_text()
    assert "users:" in text and "events:" in text and "timestamptz" in text
    report = spec_file.with_suffix(".types.md").read_text()
    assert "users" in report and "DATETIME" in report


def test_plan_is_a_dry_run(spec_file, tmp_path):
    res = CliRunner().invoke(main, ["plan", "--spec", str(spec_file), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)
    assert plan["tables"]["users"]["source_rows"] == 2
    assert any("CREATE TABLE" in s for s in plan["ddl"])
    assert not (tmp_path / "data").exists() and not (tmp_path / "staging").exists()


@pytest.mark.parametrize("args, message", [
    (["migrate", "--spec", "nope.yaml"], "cannot read spec"),
    (["plan", "--spec", "nope.yaml"], "cannot read spec"),
    (["validate", "--spec", "nope.yaml"], "cannot read spec"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_unreachable_target_exits_2_without_password(spec_file):
    url = "postgresql://nova:s3cret-pw@127.0.0.1:1/nowhere"
    res = CliRunner().invoke(main, ["migrate", "--spec", str(spec_file), "--postgres-url", url, "--no-backup"])
    assert res.exit_code == 2, res.output
    assert "PostgreSQL unreachable" in res.output
    assert "s3cret-pw" not in res.output and "Traceback" not in res.output


def test_migrate_then_report_and_validate(spec_file, pg_url):
    spec_file.write_text(spec_file.read_text() + "keep_staging: true\n")  # validate reads the staged Parquet
    runner = CliRunner()
    res = runner.invoke(main, ["migrate", "--spec", str(spec_file), "--postgres-url", pg_url, "--no-backup", "--json"],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["report", "--spec", str(spec_file)], catch_exceptions=False)
    assert res.exit_code == 0 and "Migration report — succeeded" in res.output
    out = spec_file.parent / "checks.json"
    res = runner.invoke(main, ["validate", "--spec", str(spec_file), "--postgres-url", pg_url, "--report", str(out)],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    checks = json.loads(out.read_text())["checks"]
    assert {c["check"] for c in checks} >= {"row_reconciliation", "primary_key", "content_hash"}
    assert all(c["passed"] for c in checks if c["severity"] == "ERROR")


def test_doctor_names_what_is_wrong(spec_file, monkeypatch):
    monkeypatch.delenv("NOVA_BACKUP_KEY", raising=False)
    res = CliRunner().invoke(main, ["doctor", "--spec", str(spec_file), "--postgres-url",
                                    "postgresql://u:pw@127.0.0.1:1/x"])
    assert res.exit_code == 2
    assert "FAIL PostgreSQL unreachable" in res.output and "NOVA_BACKUP_KEY not set" in res.output
    assert "pw@" not in res.output


def test_migrate_takes_a_pre_migration_backup_and_rollback_returns_to_it(spec_file, pg_url, monkeypatch):
    import psycopg

    monkeypatch.setenv("NOVA_BACKUP_KEY", "ab" * 32)
    runner = CliRunner()
    res = runner.invoke(main, ["migrate", "--spec", str(spec_file), "--postgres-url", pg_url], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "pre-migration backup:" in res.output
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM public.users").fetchone()[0] == 2
    res = runner.invoke(main, ["rollback", "--spec", str(spec_file), "--reason", "test rollback"],
                        env={"NOVA_POSTGRES_URL": pg_url}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('public.users')").fetchone()[0] is None
    history = (spec_file.parent / "data" / "reports" / "history.json")
    assert "test rollback" in history.read_text()


def test_migrate_without_backup_key_says_how_to_proceed(spec_file, pg_url, monkeypatch):
    monkeypatch.delenv("NOVA_BACKUP_KEY", raising=False)
    first = CliRunner().invoke(main, ["migrate", "--spec", str(spec_file), "--postgres-url", pg_url, "--no-backup"])
    assert first.exit_code == 0, first.output  # an empty target needs no key (test_first_migration); one with rows does
    res = CliRunner().invoke(main, ["migrate", "--spec", str(spec_file), "--postgres-url", pg_url])
    assert res.exit_code == 2
    assert "NOVA_BACKUP_KEY" in res.output and "--no-backup" in res.output


def test_console_command_keeps_exit_codes_and_output(spec_file, small_db, tmp_path):
    """The installed command ends without interpreter teardown, yet exit codes, stdout and stderr are intact."""
    import subprocess
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "-m", "nova_pipeline.cli.main", *args], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120)

    ok = run("plan", "--spec", str(spec_file), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)  # the whole JSON document was flushed
    bad = run("plan", "--spec", str(tmp_path / "missing.yaml"))
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "missing.yaml" in bad.stderr
    usage = run("no-such-command")
    assert usage.returncode == 2 and "No such command" in usage.stderr
