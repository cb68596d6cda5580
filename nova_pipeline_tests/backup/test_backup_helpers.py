"""Shared builders for the backup tests: a spec, populated targets, content fingerprints computed in the stores."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import bson
import psycopg
import yaml
from psycopg import sql

from nova_pipeline.core.connections import mongo_client
from nova_pipeline.core.spec import load_spec

KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
OTHER_KEY_HEX = "ff" * 32
MONGO_DB = "nova_logs"


def make_spec(tmp_path: Path, pg_url: str, mongo_uri: str | None):
    """A spec with two PostgreSQL schemas, one Mongo collection and a small SQLite source."""
    source = tmp_path / "source.sqlite"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT OR REPLACE INTO users VALUES (1, 'ada'), (2, 'bob')")
    conn.close()
    data = {
        "source": {"sqlite": "source.sqlite"},
        "reports": "reports",
        "targets": {"postgres": {"url": pg_url, "schema": "core"}},
        "tables": {"users": {"target": "postgres", "primary_key": ["id"]},
                   "events": {"target": "postgres", "table": "audit.events"}},
        "backup": {"dest": "backups"},
    }
    if mongo_uri:
        data["targets"]["mongo"] = {"uri": mongo_uri, "database": MONGO_DB}
        data["tables"]["logs"] = {"target": "mongo", "collection": "logs"}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path)


def populate_postgres(url: str) -> None:
    """Tables with awkward values (quotes, unicode, NULL, jsonb, bytea, timestamptz) in core, audit and nova_meta."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            CREATE SCHEMA core; CREATE SCHEMA audit; CREATE SCHEMA nova_meta;
            CREATE TABLE core.users (id bigint PRIMARY KEY, name text NOT NULL, score numeric(10,2),
                                     profile jsonb, avatar bytea, seen timestamptz);
            CREATE INDEX users_name_idx ON core.users (name);
            CREATE TABLE audit.events (id integer PRIMARY KEY, user_id bigint REFERENCES core.users(id), what text);
            CREATE TABLE nova_meta.runs (run_id text PRIMARY KEY, finished boolean);
            INSERT INTO core.users SELECT g, 'user ''' || g || ' ✓', g * 1.5, jsonb_build_object('k', g),
                   decode(md5(g::text), 'hex'), timestamptz '2024-01-01 00:00+00' + g * interval '1 hour'
              FROM generate_series(1, 200) g;
            INSERT INTO core.users VALUES (1000, 'nulls', NULL, NULL, NULL, NULL);
            INSERT INTO audit.events SELECT g, g % 200 + 1, 'evt ' || g FROM generate_series(1, 300) g;
            INSERT INTO nova_meta.runs VALUES ('r1', true);
        """)


def populate_mongo(uri: str) -> None:
    db = mongo_client(uri)[MONGO_DB]
    db.logs.insert_many([{"_id": i, "level": "info" if i % 3 else "error", "at": dt.datetime(2024, 1, 1, i % 24,
                          tzinfo=dt.UTC), "tags": ["a", str(i)], "nested": {"n": i, "oid": bson.ObjectId()}}
                         for i in range(150)])
    db.logs.create_index([("level", 1), ("at", -1)], name="level_at")
    db.metrics.insert_one({"_id": "m1", "value": 1.5})


def pg_fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """{schema.table: (row count, md5 of all rows ordered by primary key)} for every user table, computed in SQL."""
    out = {}
    with psycopg.connect(url) as conn:
        tables = conn.execute("""
            SELECT n.nspname, c.relname,
                   (SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum)
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2""").fetchall()
        for schema, table, pk in tables:
            order = sql.SQL(", ").join(sql.Identifier(c) for c in pk.split(","))
            q = sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY {}), '')) FROM {}.{} t").format(
                order, sql.Identifier(schema), sql.Identifier(table))
            out[f"{schema}.{table}"] = tuple(conn.execute(q).fetchone())
        out["indexes"] = tuple(r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog') ORDER BY 1").fetchall())
    return out


def mongo_fingerprint(uri: str) -> dict[str, object]:
    db = mongo_client(uri)[MONGO_DB]
    return {name: ([bson.encode(d) for d in db[name].find({}, sort=[("_id", 1)])],
                   sorted((ix["name"], tuple(ix["key"].items())) for ix in db[name].list_indexes()))
            for name in sorted(db.list_collection_names())}
