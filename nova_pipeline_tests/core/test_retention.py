"""Retention: a successful migration removes the plaintext staging and snapshot unless `keep_staging: true`;
a failed one keeps what `resume` needs; `nova-pipeline clean` removes what runs left behind."""

import json

import yaml

from nova_pipeline.core.staging import local_area
from nova_pipeline.core.spec import load_spec
from nova_pipeline.load import postgres_load
from nova_pipeline_tests.orchestration.test_failures import dagster_home  # noqa: F401  (fixture)
from nova_pipeline_tests.orchestration.test_run_faults import cli, migrate, spec_for

PLAINTEXT = {"raw", "clean", "snapshot"}


def _area(spec):
    return local_area(load_spec(spec))


def _folders(spec) -> set[str]:
    area = _area(spec)
    return {p.name for p in area.iterdir() if p.is_dir()} if area.exists() else set()


def _notes(tmp_path) -> list[str]:
    return json.loads((tmp_path / "r.json").read_text())["notes"]


def test_success_removes_plaintext_staging_and_snapshot_and_keeps_quarantine(tmp_path, pg_url, dagster_home):
    spec = spec_for(tmp_path, "a", ["a1", "a2"])
    res = migrate(spec, pg_url, "--report", str(tmp_path / "r.json"))
    assert res.exit_code == 0, res.output
    assert not _folders(spec) & (PLAINTEXT | {"facts"}) and "quarantine" in _folders(spec)
    quarantine = _area(spec) / "quarantine"
    assert (f"plaintext staging and snapshot removed; quarantined rows stay in {quarantine} until "
            "`nova-pipeline clean --quarantine`") in _notes(tmp_path)
    assert "plaintext staging and snapshot removed" in res.output

    cleaned = cli("clean", "--spec", str(spec), "--quarantine", "--json")
    assert cleaned.exit_code == 0, cleaned.output
    assert json.loads(cleaned.output) == {"removed": [str(quarantine)], "quarantine_kept": None}
    assert _folders(spec) == set()


def test_keep_staging_keeps_it_until_clean(tmp_path, pg_url, dagster_home):
    spec = spec_for(tmp_path, "a", ["a1", "a2"])
    data = yaml.safe_load(spec.read_text())
    spec.write_text(yaml.safe_dump({**data, "keep_staging": True}, sort_keys=False))
    res = migrate(spec, pg_url, "--report", str(tmp_path / "r.json"))
    assert res.exit_code == 0, res.output
    assert _folders(spec) >= PLAINTEXT | {"quarantine"}
    assert any(n.startswith(f"staging kept at {_area(spec)} (keep_staging: true)") for n in _notes(tmp_path))

    cleaned = cli("clean", "--spec", str(spec))
    assert cleaned.exit_code == 0, cleaned.output
    area = _area(spec)
    assert f"removed {area}/raw" in cleaned.output and f"removed {area}/snapshot" in cleaned.output
    assert f"kept the quarantined rows in {area}/quarantine" in cleaned.output
    assert _folders(spec) == {"quarantine"}
    assert cli("clean", "--spec", str(spec)).output.startswith("nothing to remove")


def test_failed_run_keeps_what_resume_needs(tmp_path, pg_url, dagster_home, monkeypatch):
    spec = spec_for(tmp_path, "a", ["a1", "a2"])
    real = postgres_load._encode_batch

    def fail(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(postgres_load, "_encode_batch", fail)
    res = migrate(spec, pg_url, "--report", str(tmp_path / "r.json"))
    assert res.exit_code == 1, res.output
    assert _folders(spec) >= PLAINTEXT and (_area(spec) / "snapshot" / "source.sqlite").exists()
    assert not any("removed" in n or "staging kept" in n for n in _notes(tmp_path))

    monkeypatch.setattr(postgres_load, "_encode_batch", real)
    resumed = cli("resume", "--spec", str(spec), "--postgres-url", pg_url, "--report", str(tmp_path / "r.json"))
    assert resumed.exit_code == 0, resumed.output
    assert not _folders(spec) & PLAINTEXT
    assert any(n.startswith("plaintext staging and snapshot removed") for n in _notes(tmp_path))
