"""`backup create|list|verify|restore|prune` and `rollback`: argument parsing only; the engine does the work.

Exit codes: 0 success; 1 a set failed verification (the damaged file or the
edited manifest fields are named); 2 bad input, a wrong NOVA_BACKUP_KEY, an
unsealed set without --accept-unsealed or an unreachable target, as one line
without secrets.
"""

from __future__ import annotations

import functools
import os
from datetime import UTC, datetime

import click

from nova_pipeline.core import connections
from nova_pipeline.backup.create import backup_dest, create_backup
from nova_pipeline.backup.crypto import KEY_HINT, key_from_env
from nova_pipeline.backup.errors import BackupError, BackupKeyError, VerificationError
from nova_pipeline.backup.restore import restore
from nova_pipeline.backup.retention import apply_retention, retention_days_setting
from nova_pipeline.backup.rollback import rollback
from nova_pipeline.backup.sets import list_sets, sweep_leftovers
from nova_pipeline.backup.verify import AUTHENTICATED, manifest_state, verify_set
from nova_pipeline.core.spec import SpecError, load_spec
from nova_pipeline.cli.json_output import json_option, print_json

spec_option = click.option("--spec", "spec_path", default=lambda: os.environ.get("NOVA_SPEC", "data/nova.spec.yaml"),
                           show_default="NOVA_SPEC or data/nova.spec.yaml", type=click.Path(dir_okay=False),
                           help="Migration spec (YAML).")
dest_option = click.option("--dest", default=None, help="Backup directory or fsspec URI (default: the spec's backup.dest).")
unsealed_option = click.option("--accept-unsealed", is_flag=True,
                               help="Use a set written before manifests were sealed (its label, dates and "
                                    "pre-migration flag are not authenticated).")


def _one_line_errors(fn):
    """Known failures become one redacted line on stderr with exit 1 (verification) or 2 (bad input)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VerificationError as e:
            click.echo(f"nova-pipeline: {connections.redact(str(e))}", err=True)
            raise SystemExit(1) from None
        except (BackupError, SpecError, connections.TargetUnreachable, FileNotFoundError) as e:
            click.echo(f"nova-pipeline: {connections.redact(str(e))}", err=True)
            raise SystemExit(2) from None
    return wrapper


@click.group("backup")
def backup_group():
    """Encrypted, verified backup sets of the targets and the source."""


@backup_group.command("create")
@spec_option
@dest_option
@click.option("--postgres-url", default=None, help="PostgreSQL URL (default: spec, env, embedded server).")
@click.option("--mongo-uri", default=None, help="MongoDB URI (default: spec, NOVA_MONGO_URI, MONGO_URI).")
@click.option("--no-encrypt", is_flag=True, help="Write an unencrypted set (otherwise NOVA_BACKUP_KEY is required).")
@click.option("--label", default=None, help="Label; 'pre-migration' marks a rollback target.")
@json_option
@_one_line_errors
def create_cmd(spec_path, dest, postgres_url, mongo_uri, no_encrypt, label, as_json):
    """Write one backup set; its path is the last line of output."""
    spec = load_spec(spec_path)
    if not no_encrypt and key_from_env(required=False) is None:
        raise BackupKeyError(f"NOVA_BACKUP_KEY is not set: {KEY_HINT}, or pass --no-encrypt for an unencrypted set")
    _sweep(dest or backup_dest(spec))
    backup = create_backup(spec, dest=dest, postgres_url=postgres_url, mongo_uri=mongo_uri,
                           no_encrypt=no_encrypt, label=label)
    m = backup.manifest
    if as_json:
        return print_json({**_set_json(backup), "files": len(m["files"]), "duration_s": m["duration_s"]})
    click.echo(f"{len(m['files'])} files, {_size(backup.stored_size)}, {m['duration_s']:.1f} s, {backup.state}"
               + ("" if m["encryption"] else ", NOT encrypted"))
    click.echo(backup.location)


@backup_group.command("list")
@spec_option
@dest_option
@json_option
@_one_line_errors
def list_cmd(spec_path, dest, as_json):
    """Sets with age, size, pre-migration flag and verification state (oldest first)."""
    where = dest or backup_dest(load_spec(spec_path))
    _sweep(where)
    sets = list_sets(where)
    key = key_from_env(required=False)
    if as_json:
        return print_json([{**_set_json(s), "manifest": manifest_state(s, key)} for s in sets])
    if not sets:
        click.echo(f"no backup sets under {where}")
        return
    now = datetime.now(UTC)
    click.echo(f"{'set':<24} {'created (UTC)':<20} {'age':>7} {'size':>10}  {'pre-migration':<13} {'state':<10} "
               f"{'manifest':<10} label")
    for s in sets:
        age = now - s.created_at
        click.echo(f"{s.set_id:<24} {s.created_at:%Y-%m-%d %H:%M:%S} {_age(age.total_seconds()):>7} "
                   f"{_size(s.stored_size):>10}  {'yes' if s.pre_migration else 'no':<13} {s.state:<10} "
                   f"{manifest_state(s, key):<10} {s.manifest.get('label') or ''}")


@backup_group.command("verify")
@click.argument("path")
@unsealed_option
@json_option
@_one_line_errors
def verify_cmd(path, accept_unsealed, as_json):
    """Authenticate the manifest, check every file against it and decrypt it; exit 1 naming what failed."""
    result = verify_set(path, accept_unsealed=accept_unsealed)
    if as_json:
        print_json({"set": path, **{k: result[k] for k in ("ok", "problems", "manifest", "checked_at")}})
        raise SystemExit(0 if result["ok"] else 1)
    if not result["ok"]:
        for problem in result["problems"]:
            click.echo(f"DAMAGED {problem}")
        raise SystemExit(1)
    click.echo(f"ok: {path} ({result['manifest']})")


@backup_group.command("restore")
@click.argument("path")
@click.option("--postgres-url", required=True, help="PostgreSQL database to restore into.")
@click.option("--mongo-uri", default=None, help="MongoDB to restore into (Mongo is skipped when omitted).")
@click.option("--mongo-database", default=None, help="Database name (default: the one backed up).")
@unsealed_option
@json_option
@_one_line_errors
def restore_cmd(path, postgres_url, mongo_uri, mongo_database, accept_unsealed, as_json):
    """Verify a set, then make the named targets equal to it."""
    done = restore(path, connections.postgres_url(None, postgres_url), mongo_uri, mongo_database=mongo_database,
                   accept_unsealed=accept_unsealed)
    if as_json:
        return print_json({**done, "postgres_url": connections.redact(postgres_url)})
    if done["manifest"] != AUTHENTICATED:
        click.echo(f"note: {done['manifest']}")
    pg = done.get("postgres")
    if pg:
        click.echo(f"postgres: schemas {', '.join(pg['schemas'])} restored into {connections.redact(postgres_url)}")
    if pg and pg.get("dropped") is not None:
        click.echo(f"postgres: back to the empty baseline, dropped {len(pg['dropped'])} object(s)")
    if "mongo" in done and "dropped" in done["mongo"]:
        click.echo(f"mongo: back to the empty baseline, dropped {len(done['mongo']['dropped'])} collection(s)")
    elif "mongo" in done:
        docs = sum(done["mongo"]["documents"].values())
        click.echo(f"mongo: {len(done['mongo']['documents'])} collections, {docs} documents into {done['mongo']['database']}")


@backup_group.command("prune")
@spec_option
@dest_option
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@json_option
@_one_line_errors
def prune_cmd(spec_path, dest, dry_run, as_json):
    """Apply retention: BACKUP_RETENTION_DAYS (or the spec) and keep the newest K verified sets."""
    spec = load_spec(spec_path)
    removed = apply_retention(dest or backup_dest(spec), retention_days_setting(spec.backup.retention_days),
                              spec.backup.keep_last, dry_run=dry_run)
    if as_json:
        return print_json({"dry_run": dry_run, "deleted": removed})
    for location in removed:
        click.echo(f"{'would delete' if dry_run else 'deleted'} {location}")
    click.echo(f"{len(removed)} set(s) {'to delete' if dry_run else 'deleted'}")


@click.command("rollback")
@spec_option
@click.option("--reason", required=True, help="Why; recorded in the report history.")
@dest_option
@click.option("--postgres-url", default=None, help="PostgreSQL URL (default: spec, env, embedded server).")
@click.option("--mongo-uri", default=None, help="MongoDB URI (default: spec, NOVA_MONGO_URI, MONGO_URI).")
@unsealed_option
@json_option
@_one_line_errors
def rollback_command(spec_path, reason, dest, postgres_url, mongo_uri, accept_unsealed, as_json):
    """Return the targets to the last pre-migration backup (after a safety backup) and record why."""
    spec = load_spec(spec_path)
    _sweep(dest or backup_dest(spec))
    entry = rollback(spec, connections.postgres_url(spec, postgres_url), connections.mongo_uri(spec, mongo_uri),
                     reason, dest, accept_unsealed=accept_unsealed)
    if as_json:
        return print_json(entry)
    click.echo(f"restored {entry['restored_set']}")
    no_safety = "none (back to an empty baseline without NOVA_BACKUP_KEY; the tables held what the migration loaded)"
    click.echo(f"safety backup {entry['safety_set'] or no_safety}")


def _set_json(s) -> dict:
    """One set's facts for --json output."""
    return {"set": s.location, "set_id": s.set_id, "created_at": s.manifest["created_at"], "label": s.manifest.get("label"),
            "pre_migration": s.pre_migration, "baseline": bool(s.manifest.get("baseline")), "encrypted": s.encrypted,
            "stored_size": s.stored_size, "state": s.state}


def _sweep(dest: str) -> None:
    """Remove what killed backups left under dest, saying so on stderr."""
    for location in sweep_leftovers(dest):
        click.echo(f"removed leftovers of an interrupted backup: {location}", err=True)


def _size(n: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n, i = n / 1024, i + 1
    return f"{n:.0f} B" if i == 0 else f"{n:.1f} {units[i]}"


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"
