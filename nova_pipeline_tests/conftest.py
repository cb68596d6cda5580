"""Shared fixtures: one real PostgreSQL server per test session, a fresh database per test."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid

import psycopg
import pytest

from nova_pipeline.orchestration.dagster_storage import INSTANCE_YAML

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

_counter = itertools.count()


@pytest.fixture(autouse=True, scope="session")
def _dagster_home(tmp_path_factory):
    """CLI runs in tests record into a throwaway Dagster instance, never the user's."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    old = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("DAGSTER_HOME", None)
    else:
        os.environ["DAGSTER_HOME"] = old


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL 16 (pgserver wheel) for the session; yields the admin URL.

    Its directory is outside pytest's 0700 tmp root: as root, pgserver runs postgres as another user.
    """
    import pgserver

    root = tempfile.mkdtemp(prefix="nova-pg-")
    os.chmod(root, 0o755)
    server = pgserver.get_server(root, cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def _create_db(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.replace("/postgres?", f"/{name}?", 1)


@pytest.fixture
def pg_url(pg_server) -> str:
    """URL of a new, empty database on the session server."""
    return _create_db(pg_server, f"t{next(_counter)}_{uuid.uuid4().hex[:8]}")


@pytest.fixture
def make_pg_url(pg_server):
    """Factory for further empty databases (restore targets, comparisons)."""
    return lambda: _create_db(pg_server, f"t{next(_counter)}_{uuid.uuid4().hex[:8]}")


@pytest.fixture
def mongo_server():
    """(uri, fresh database name) on the real MongoDB server in NOVA_TEST_MONGO_URI; the database is dropped after.

    Without the variable the test skips, unless NOVA_REQUIRE_MONGO_SERVER=1 (CI), where it fails instead.
    """
    from nova_pipeline.core.connections import mongo_client, ping_mongo

    uri = os.environ.get("NOVA_TEST_MONGO_URI")
    if not uri:
        reason = "NOVA_TEST_MONGO_URI not set: real-MongoDB tests need a server (README: MongoDB)"
        if os.environ.get("NOVA_REQUIRE_MONGO_SERVER") == "1":
            pytest.fail(reason + "; NOVA_REQUIRE_MONGO_SERVER=1 forbids skipping")
        pytest.skip(reason)
    client = mongo_client(uri)
    ping_mongo(client, uri)
    database = f"nova_test_{uuid.uuid4().hex[:8]}"
    yield uri, database
    client.drop_database(database)
    client.close()


@pytest.fixture
def mongo_uri() -> str:
    """A fresh in-process MongoDB double (mongomock) URI."""
    return f"mongomock://test-{uuid.uuid4().hex[:8]}"
