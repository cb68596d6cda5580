"""`doctor`: configuration and connectivity checks, each with how to fix it.

A check is `ok`, `warn` (works, but something to know) or `fail` (a command
will refuse). A missing NOVA_BACKUP_KEY fails only when a target already
holds rows of the spec's tables, i.e. when `migrate` has something to back
up first; otherwise it is a warning. A PostgreSQL target reached over the
network without TLS (pg_stat_ssl of doctor's own session) is a warning.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from nova_pipeline.core import connections, target_state
from nova_pipeline.backup.crypto import parse_key
from nova_pipeline.backup.errors import BackupKeyError
from nova_pipeline.core.spec import Spec, SpecError, load_spec

KEY_HINT = "create one with `python -c 'import secrets; print(secrets.token_hex(32))'`"


@dataclass(frozen=True)
class Check:
    """One doctor finding; the message never contains secrets."""

    name: str
    level: str  # "ok", "warn" or "fail"
    message: str

    @property
    def ok(self) -> bool:
        return self.level != "fail"

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def to_json(checks: list[Check]) -> dict:
    """The machine-readable form: overall `ok` and every check with name, ok, level and message."""
    return {"ok": all(c.ok for c in checks), "checks": [c.to_dict() for c in checks]}


def diagnose(spec_path: str, postgres_url: str | None, mongo_uri: str | None) -> list[Check]:
    """Every check of the spec, its source, its targets and the backup key."""
    try:
        spec = load_spec(spec_path)
    except SpecError as e:
        return [Check("spec", "fail", f"spec: {e} — fix the key named, or regenerate with `nova-pipeline init`")]
    checks = [Check("spec", "ok", f"spec {spec_path}: {len(spec.table_items())} tables")]
    source = spec.resolve(spec.source.sqlite)
    checks.append(Check("source", "ok", f"source {source}") if source.exists() else Check(
        "source", "fail", f"source {source} missing — generate it (`nova-pipeline demo`) or fix source.sqlite"))
    holding: list[str] = []  # spec tables that already hold rows in their target
    if spec.table_items("postgres"):
        check, tables = _postgres(spec, postgres_url)
        checks.append(check)
        holding += tables
    if spec.table_items("mongo"):
        check, tables = _mongo(spec, mongo_uri)
        checks.append(check)
        holding += tables
    checks.append(_backup_key(holding))
    return checks


def _postgres(spec: Spec, explicit: str | None) -> tuple[Check, list[str]]:
    try:
        url = connections.postgres_url(spec, explicit, embedded=False)
        with connections.connect_postgres(url) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            tables = target_state.tables_holding_rows(conn, spec)
            tls, local = connections.session_tls(conn), connections.is_local_connection(conn)
        where = f"PostgreSQL {version} at {connections.redact(url)}"
        if tls:
            return Check("postgres", "ok", f"{where} (TLS: {tls})"), tables
        if local:
            return Check("postgres", "ok", f"{where} (local, no TLS)"), tables
        return Check("postgres", "warn", f"{where} reached without TLS: the password and the data cross the network "
                                         "in plaintext — set POSTGRES_SSL=true or sslmode=require in the URL "
                                         "(verify-full with sslrootcert also checks the server's certificate)"), tables
    except connections.TargetUnreachable as e:
        if "no PostgreSQL configured" in str(e):  # its rows are not inspected: doctor does not start it
            return Check("postgres", "ok", "PostgreSQL: none configured, so the embedded server under data/.nova/ "
                                           "is used (`nova-pipeline db url` prints its URL; set NOVA_POSTGRES_URL "
                                           "or POSTGRES_HOST to use yours)"), []
        return Check("postgres", "fail", f"{e} — check NOVA_POSTGRES_URL / POSTGRES_HOST, PORT, USER, PASSWORD "
                                         "and that the server runs"), []


def _mongo(spec: Spec, explicit: str | None) -> tuple[Check, list[str]]:
    uri = connections.mongo_uri(spec, explicit)
    if not uri:
        return Check("mongo", "fail", "MongoDB: no URI — set NOVA_MONGO_URI (or pass --mongo-uri); "
                                      "the demo uses an in-process double"), []
    try:
        client = connections.mongo_client(uri)
        connections.ping_mongo(client, uri)
    except connections.TargetUnreachable as e:
        return Check("mongo", "fail", f"{e} — check NOVA_MONGO_URI and that mongod runs (docker compose up mongo)"), []
    tables = target_state.collections_holding_rows(client[spec.targets.mongo.database], spec)
    return Check("mongo", "ok", f"MongoDB at {connections.redact(uri)}"), tables


def _backup_key(holding: list[str]) -> Check:
    key = os.environ.get("NOVA_BACKUP_KEY", "")
    if key.strip():
        try:
            parse_key(key)
        except BackupKeyError as e:
            return Check("backup_key", "fail", f"{e} — {KEY_HINT}")
        return Check("backup_key", "ok", "NOVA_BACKUP_KEY set")
    if holding:
        shown = ", ".join(holding[:5]) + (f" and {len(holding) - 5} more" if len(holding) > 5 else "")
        return Check("backup_key", "fail", f"NOVA_BACKUP_KEY not set, and the target already holds rows of {shown}: "
                                           f"`migrate` backs them up first — {KEY_HINT}, or pass --no-backup")
    return Check("backup_key", "warn", "NOVA_BACKUP_KEY not set — not needed while the targets hold none of the "
                                       "spec's rows; `backup create`, the nightly and post-migration backups need it: "
                                       f"{KEY_HINT}")
