"""Dagster wiring of backups: schedule, sensors, the nightly and rollback jobs, the alert webhook."""

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import psycopg
import pytest
from nova_pipeline_tests.backup.test_backup_helpers import KEY_HEX, make_spec, pg_fingerprint, populate_mongo, populate_postgres

from nova_pipeline.backup import list_sets
from nova_pipeline.orchestration.defs.backups import build_backup_defs
from nova_pipeline.orchestration.defs.resources import MongoResource, PostgresResource, nova_resource


class MigrateConfig(dg.Config):
    fail: bool = False


@dg.op
def fake_migrate(config: MigrateConfig):
    if config.fail:
        raise RuntimeError("load failed for table users (password=hunter2)")


@dg.job
def migrate():
    fake_migrate()


def _by_name(items, name):
    return next(i for i in items if i.name == name)


def _run_migrate(instance, fail: bool):
    return migrate.execute_in_process(instance=instance, raise_on_error=False,
                                      run_config={"ops": {"fake_migrate": {"config": {"fail": fail}}}})


def test_schedule_cron_from_env_and_default(monkeypatch):
    monkeypatch.delenv("BACKUP_SCHEDULE", raising=False)
    schedule = _by_name(build_backup_defs(migrate)["schedules"], "nightly_backup_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "UTC")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    tick = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=datetime(2025, 5, 1, 2, tzinfo=UTC)))
    assert len(tick.run_requests) == 1 and schedule.job_name == "nightly_backup"

    monkeypatch.setenv("BACKUP_SCHEDULE", "30 3 * * 1")
    assert _by_name(build_backup_defs(migrate)["schedules"], "nightly_backup_schedule").cron_schedule == "30 3 * * 1"
    monkeypatch.setenv("BACKUP_SCHEDULE", "every night")
    with pytest.raises(ValueError, match="invalid cron expression 'every night'"):
        build_backup_defs(migrate)


def test_backup_requested_after_successful_migration(monkeypatch):
    monkeypatch.setenv("NOVA_BACKUP_KEY", KEY_HEX)
    sensor = _by_name(build_backup_defs(migrate)["sensors"], "backup_after_migration")
    instance = dg.DagsterInstance.ephemeral()
    ok = _run_migrate(instance, fail=False)
    ctx = dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_instance=instance,
                                             dagster_run=ok.dagster_run, dagster_event=ok.get_run_success_event())
    request = sensor(ctx)
    assert request.run_key == ok.run_id
    assert request.tags["nova/backup_label"] == "post-migration"
    assert sensor.job_name == "nightly_backup"


@pytest.fixture
def webhook():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append((self.headers["Content-Type"], json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def test_failure_sensor_posts_alert(webhook, monkeypatch):
    url, received = webhook
    monkeypatch.setenv("NOVA_ALERT_WEBHOOK", url)
    sensor = _by_name(build_backup_defs(migrate)["sensors"], "alert_on_run_failure")
    instance = dg.DagsterInstance.ephemeral()
    bad = _run_migrate(instance, fail=True)
    assert not bad.success
    ctx = dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_instance=instance,
                                             dagster_run=bad.dagster_run,
                                             dagster_event=bad.get_run_failure_event()).for_run_failure()
    sensor(ctx)
    assert len(received) == 1
    content_type, payload = received[0]
    assert content_type == "application/json"
    assert (payload["event"], payload["job"], payload["run_id"]) == ("run_failure", "migrate", bad.run_id)
    assert "hunter2" not in json.dumps(payload)

    monkeypatch.delenv("NOVA_ALERT_WEBHOOK")
    sensor(ctx)
    assert len(received) == 1


def test_nightly_backup_and_rollback_jobs(tmp_path, pg_url, mongo_uri, monkeypatch):
    monkeypatch.setenv("NOVA_BACKUP_KEY", KEY_HEX)
    populate_postgres(pg_url)
    populate_mongo(mongo_uri)
    spec = make_spec(tmp_path, pg_url, mongo_uri)
    before = pg_fingerprint(pg_url)
    defs = build_backup_defs(migrate, spec)
    resources = {"nova": nova_resource(spec.spec_path), "postgres": PostgresResource(url_override=pg_url),
                 "mongo": MongoResource(uri_override=mongo_uri)}
    dg.Definitions.validate_loadable(dg.Definitions(jobs=[migrate, *defs["jobs"]], schedules=defs["schedules"],
                                                    sensors=defs["sensors"], resources=resources))

    nightly = _by_name(defs["jobs"], "nightly_backup")
    res = nightly.execute_in_process(resources=resources, tags={"nova/backup_label": "pre-migration"})
    assert res.success
    location = res.output_for_node("create_backup_set")
    meta = next(e for e in res.all_events if e.event_type_value == "STEP_OUTPUT").step_output_data.metadata
    assert meta["size_bytes"].value > 0 and meta["duration_s"].value > 0
    assert meta["verification"].value == "verified" and meta["encrypted"].value is True
    [made] = list_sets(str(tmp_path / "backups"))
    assert made.location == location and made.pre_migration and meta["size_bytes"].value == made.stored_size

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("TRUNCATE audit.events")
    res = _by_name(defs["jobs"], "rollback").execute_in_process(
        resources=resources, run_config={"ops": {"rollback_targets": {"config": {"reason": "truncated by mistake"}}}})
    assert res.success and res.output_for_node("rollback_targets") == location
    assert pg_fingerprint(pg_url) == before
    assert json.loads((tmp_path / "reports" / "history.json").read_text())[0]["reason"] == "truncated by mistake"
