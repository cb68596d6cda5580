"""`doctor`: configuration and connectivity checks, each with how to fix it."""

from __future__ import annotations

import os
from collections.abc import Iterator

from nova_pipeline import connections
from nova_pipeline.spec import SpecError, load_spec


def diagnose(spec_path: str, postgres_url: str | None, mongo_uri: str | None) -> Iterator[tuple[bool, str]]:
    """Yield (ok, message) per check; messages never contain secrets."""
    try:
        spec = load_spec(spec_path)
    except SpecError as e:
        yield False, f"spec: {e} — fix the key named, or regenerate with `nova-pipeline init`"
        return
    yield True, f"spec {spec_path}: {len(spec.table_items())} tables"
    source = spec.resolve(spec.source.sqlite)
    yield (source.exists(), f"source {source}" + ("" if source.exists() else
                                                  " missing — generate it (`nova-pipeline demo`) or fix source.sqlite"))
    if spec.table_items("postgres"):
        try:
            url = connections.postgres_url(spec, postgres_url, embedded=False)
            with connections.connect_postgres(url) as conn:
                version = conn.execute("SHOW server_version").fetchone()[0]
            yield True, f"PostgreSQL {version} at {connections.redact(url)}"
        except connections.TargetUnreachable as e:
            embedded = "no PostgreSQL configured" in str(e)
            yield embedded, (f"{e} — the embedded server under data/.nova/ will be used" if embedded else
                             f"{e} — check NOVA_POSTGRES_URL / POSTGRES_HOST, PORT, USER, PASSWORD and that the server runs")
    if spec.table_items("mongo"):
        uri = connections.mongo_uri(spec, mongo_uri)
        if not uri:
            yield False, "MongoDB: no URI — set NOVA_MONGO_URI (or pass --mongo-uri); the demo uses an in-process double"
        else:
            try:
                connections.ping_mongo(connections.mongo_client(uri), uri)
                yield True, f"MongoDB at {connections.redact(uri)}"
            except connections.TargetUnreachable as e:
                yield False, f"{e} — check NOVA_MONGO_URI and that mongod runs (docker compose up mongo)"
    key = os.environ.get("NOVA_BACKUP_KEY")
    yield (bool(key), "NOVA_BACKUP_KEY set" if key else
           "NOVA_BACKUP_KEY not set — backups refuse to run unencrypted; create one with "
           "`python -c 'import secrets; print(secrets.token_hex(32))'`")
