"""The instance storage of dagster.yaml: Dagster's SQLite files, written through connections kept open."""

import dagster as dg

from nova_pipeline.orchestration import dagster_storage
from nova_pipeline.orchestration.dagster_storage import INSTANCE_YAML


@dg.asset
def reading() -> int:
    return 1


@dg.asset_check(asset=reading)
def reading_positive() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def instance_at(home) -> dg.DagsterInstance:
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    return dg.DagsterInstance.from_config(str(home))


def test_runs_are_recorded_in_dagsters_files_and_read_back_by_another_instance(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    writer = instance_at(tmp_path)
    assert isinstance(writer.event_log_storage, dagster_storage.PooledSqliteEventLogStorage)
    runs = [dg.materialize([reading], instance=writer, selection=[reading]).run_id for _ in range(12)]
    checked = dg.materialize([reading, reading_positive], instance=writer).run_id

    storage = writer.event_log_storage
    assert len(storage._engines) == dagster_storage.MAX_ENGINES  # least recently used engines were closed
    assert (tmp_path / "history" / "runs" / f"{runs[0]}.db").exists()  # Dagster's own layout

    # A second instance (as the webserver would open) sees every run, materialization and check result.
    reader = dg.DagsterInstance.from_config(str(tmp_path))
    assert {r.run_id for r in reader.get_runs()} == {*runs, checked}
    for run_id in runs:
        assert reader.get_run_by_id(run_id).is_success
        assert any(e.is_dagster_event and e.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
                   for e in reader.all_logs(run_id))
    assert reader.get_latest_materialization_event(reading.key).run_id == checked
    [evaluation] = reader.event_log_storage.get_asset_check_execution_history(reading_positive.check_key, limit=1)
    assert evaluation.run_id == checked and evaluation.status.value == "SUCCEEDED"

    writer.wipe()  # closes the pooled engines before Dagster deletes the run databases
    assert set(storage._engines) <= {"index"} and reader.get_runs() == []  # only the index (emptied) reopened
    assert not (tmp_path / "history" / "runs" / f"{runs[0]}.db").exists()


def test_event_databases_commit_without_fsync_in_wal_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    instance = instance_at(tmp_path)
    run_id = dg.materialize([reading], instance=instance).run_id
    with instance.event_log_storage._engine(run_id).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_index_tables_are_looked_up_once_and_a_missing_one_again_until_it_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    instance = instance_at(tmp_path)
    storage = instance.event_log_storage
    asked = []
    real = dagster_storage.SqliteEventLogStorage.has_table
    monkeypatch.setattr(dagster_storage.SqliteEventLogStorage, "has_table",
                        lambda self, name: asked.append(name) or real(self, name))
    for _ in range(3):
        dg.materialize([reading, reading_positive], instance=instance)
    assert asked.count("asset_check_executions") == 1 and asked.count("asset_event_tags") <= 1
    assert storage.supports_asset_checks

    assert not storage.has_table("later_table") and not storage.has_table("later_table")
    with storage._engine("index").begin() as conn:
        conn.exec_driver_sql("CREATE TABLE later_table (id INTEGER)")
    assert storage.has_table("later_table") and storage.has_table("later_table")
    assert asked.count("later_table") == 3  # asked while missing, then remembered
