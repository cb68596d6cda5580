"""Issue 19 item 4: `doctor --json`, `init --json`, and a missing backup key that only matters when there is
something to back up."""

import json
import sqlite3

import psycopg
import pytest
from click.testing import CliRunner

from nova_pipeline.cli.main import main


@pytest.fixture
def spec_file(tmp_path):
    db = tmp_path / "app.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT); INSERT INTO users VALUES (1, 'a@x.io');")
    out = tmp_path / "app.yaml"
    res = CliRunner().invoke(main, ["init", "--source", str(db), "--out", str(out), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"spec": str(out), "type_report": str(out.with_suffix(".types.md")),
                                      "tables": 1, "warnings": []}
    return out


def _doctor(spec_file, pg_url, *extra):
    return CliRunner().invoke(main, ["doctor", "--spec", str(spec_file), "--postgres-url", pg_url, *extra])


def test_doctor_json_without_key_on_an_empty_target_is_ok(spec_file, pg_url, monkeypatch):
    monkeypatch.delenv("NOVA_BACKUP_KEY", raising=False)
    res = _doctor(spec_file, pg_url, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["ok"] is True
    checks = {c["name"]: c for c in out["checks"]}
    assert set(checks) == {"spec", "source", "postgres", "backup_key"}
    assert all(set(c) == {"name", "ok", "level", "message"} for c in checks.values())
    assert checks["postgres"]["ok"] and checks["postgres"]["message"].startswith("PostgreSQL ")
    assert checks["backup_key"] == {**checks["backup_key"], "ok": True, "level": "warn"}
    assert "NOVA_BACKUP_KEY not set" in checks["backup_key"]["message"]


def test_doctor_text_shows_the_missing_key_as_a_warning(spec_file, pg_url, monkeypatch):
    monkeypatch.delenv("NOVA_BACKUP_KEY", raising=False)
    res = _doctor(spec_file, pg_url)
    assert res.exit_code == 0, res.output
    assert "warn NOVA_BACKUP_KEY not set" in res.stdout and "FAIL" not in res.stdout


def test_doctor_fails_without_key_when_the_target_holds_rows(spec_file, pg_url, monkeypatch):
    monkeypatch.delenv("NOVA_BACKUP_KEY", raising=False)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.users (id bigint, email text)")
        conn.execute("INSERT INTO public.users VALUES (1, 'a@x.io')")
    res = _doctor(spec_file, pg_url, "--json")
    assert res.exit_code == 2
    out = json.loads(res.stdout)
    key = next(c for c in out["checks"] if c["name"] == "backup_key")
    assert out["ok"] is False and key["level"] == "fail" and "holds rows of users" in key["message"]
    assert "--no-backup" in key["message"]


def test_doctor_json_with_unreachable_target_and_bad_key(spec_file, monkeypatch):
    monkeypatch.setenv("NOVA_BACKUP_KEY", "short")
    res = _doctor(spec_file, "postgresql://u:pw@127.0.0.1:1/x", "--json")
    assert res.exit_code == 2
    out = json.loads(res.stdout)
    levels = {c["name"]: c["level"] for c in out["checks"]}
    assert set(levels) == {"spec", "source", "postgres", "backup_key"}
    assert levels["postgres"] == "fail" and levels["backup_key"] == "fail"
    assert "pw@" not in res.stdout


def test_doctor_json_with_a_broken_spec(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tables: 3\n")
    res = CliRunner().invoke(main, ["doctor", "--spec", str(bad), "--json"])
    assert res.exit_code == 2
    out = json.loads(res.stdout)
    assert out["ok"] is False and [c["name"] for c in out["checks"]] == ["spec"]


def test_doctor_without_a_configured_postgres_points_to_the_embedded_one(spec_file, monkeypatch):
    for var in ("NOVA_POSTGRES_URL", "POSTGRES_HOST", "NOVA_BACKUP_KEY"):
        monkeypatch.delenv(var, raising=False)
    res = CliRunner().invoke(main, ["doctor", "--spec", str(spec_file), "--json"])
    assert res.exit_code == 0, res.output
    pg = next(c for c in json.loads(res.stdout)["checks"] if c["name"] == "postgres")
    assert pg["level"] == "ok" and "embedded server" in pg["message"] and "nova-pipeline db url" in pg["message"]
