"""Issue 19 item 11: the Docker build context, the image's default command, the compose password, and the
post-migration backup sensor without a backup key."""

import fnmatch
from pathlib import Path

import dagster as dg
import pytest
import yaml

from nova_pipeline.orchestration.defs.backups import build_backup_defs

REPO = Path(__file__).resolve().parents[2]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether `docker build` leaves `path` (relative, '/'-separated) out of the context: a pattern matches the
    path or one of its parent folders (`**/` matches any depth); later `!` patterns re-include."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes)
        if hit:
            ignored = not negate
    return ignored


@pytest.fixture(scope="module")
def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_dockerignore_keeps_run_state_out_and_what_the_image_copies_in(dockerignore):
    for path in ("data/.nova/pg/PG_VERSION", "data/.nova/dagster/history/runs.db", "data/staging/raw/users/0.parquet",
                 "data/backups/2024/manifest.json", "data/reports/migration_report.json", "reports/x.md",
                 ".git/HEAD", "nova_pipeline/__pycache__/cli.cpython-311.pyc", ".venv/bin/python",
                 "data/nova.sqlite", "data/nova.sqlite-wal"):
        assert _ignored(path, dockerignore), path
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = [src for line in dockerfile.splitlines() if line.startswith("COPY ") for src in line.split()[1:-1]]
    assert copied
    for src in copied:
        assert not _ignored(src, dockerignore), src
    assert not _ignored("nova_pipeline/defs/backups.py", dockerignore)


def test_image_starts_the_dagster_ui_by_default():
    lines = [line for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    assert len(lines) == 1
    command = yaml.safe_load(lines[0][len("CMD "):])
    webserver = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["dagster-webserver"]["command"]
    assert command == webserver


def test_compose_requires_the_password_and_the_readme_says_where_to_set_it():
    compose = (REPO / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?" in compose and "nova_password" not in compose  # issue 22: no default password
    docker_section = (REPO / "README.md").read_text().split("## With Docker", 1)[1]
    assert "nova_password" not in docker_section and "POSTGRES_PASSWORD=" in docker_section and ".env" in docker_section


@dg.op
def _migrated():
    return None


@dg.job(name="migrate")
def _migrate():
    _migrated()


def _post_migration_tick():
    sensor = next(s for s in build_backup_defs(_migrate)["sensors"] if s.name == "backup_after_migration")
    instance = dg.DagsterInstance.ephemeral()
    done = _migrate.execute_in_process(instance=instance)
    return sensor(dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_instance=instance,
                                                     dagster_run=done.dagster_run,
                                                     dagster_event=done.get_run_success_event()))


@pytest.mark.parametrize("key", ["", "  "])
def test_post_migration_backup_is_skipped_with_a_reason_without_a_key(monkeypatch, key):
    monkeypatch.setenv("NOVA_BACKUP_KEY", key)
    skipped = _post_migration_tick()
    assert isinstance(skipped, dg.SkipReason)
    assert "NOVA_BACKUP_KEY is not set" in skipped.skip_message and "openssl rand -hex 32" in skipped.skip_message


def test_post_migration_backup_is_skipped_with_a_malformed_key(monkeypatch):
    monkeypatch.setenv("NOVA_BACKUP_KEY", "not-a-key")
    skipped = _post_migration_tick()
    assert isinstance(skipped, dg.SkipReason) and "64 hex characters" in skipped.skip_message


def test_post_migration_backup_is_requested_with_a_key(monkeypatch):
    monkeypatch.setenv("NOVA_BACKUP_KEY", "ab" * 32)
    request = _post_migration_tick()
    assert isinstance(request, dg.RunRequest) and request.tags["nova/backup_label"] == "post-migration"
