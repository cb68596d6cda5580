"""The same loads and checks as test_mongo_load.py / test_mongo_setup.py, against a real MongoDB server.

Runs only when NOVA_TEST_MONGO_URI is set (`docker compose up mongo`, then
NOVA_TEST_MONGO_URI=mongodb://127.0.0.1:27017 pytest -m mongo_server). Each
test uses its own database and drops it afterwards. On a real server the
validator and time-series options must actually be applied, which mongomock
cannot show.
"""

from __future__ import annotations

import os
import uuid

import pytest
from pymongo.errors import WriteError

from nova_pipeline.connections import mongo_client
from nova_pipeline.mongo_setup import json_schema, setup_collections
from test_mongo_load import (
    TELEMETRY, check_full_load_is_idempotent, check_oversized_parent_load, check_timeseries_load_is_idempotent,
    check_window_load_replaces_only_its_window,
)
from test_mongo_documents import mission_spec

pytestmark = pytest.mark.mongo_server


@pytest.fixture
def server():
    """(uri, fresh database name) on the real server; the database is dropped afterwards."""
    uri = os.environ.get("NOVA_TEST_MONGO_URI")
    if not uri:
        pytest.skip("NOVA_TEST_MONGO_URI not set: real-MongoDB tests need a server (docker compose up mongo)")
    database = f"nova_test_{uuid.uuid4().hex[:8]}"
    client = mongo_client(uri)
    yield uri, database
    client.drop_database(database)
    client.close()


@pytest.mark.parametrize("strategy", ["rename", "upsert"])
def test_full_load_is_idempotent(server, tmp_path, strategy):
    check_full_load_is_idempotent(*server, tmp_path, strategy)


def test_window_load_replaces_only_its_window(server, tmp_path):
    check_window_load_replaces_only_its_window(*server, tmp_path)


def test_timeseries_load_is_idempotent(server, tmp_path):
    check_timeseries_load_is_idempotent(*server, tmp_path)


@pytest.mark.parametrize("mode", ["quarantine", "split"])
def test_oversized_parent_load(server, tmp_path, mode):
    check_oversized_parent_load(*server, tmp_path, mode)


def test_validator_and_timeseries_are_applied(server, tmp_path):
    uri, database = server
    spec = mission_spec(uri, tmp_path, database=database, telemetry=TELEMETRY)
    db = mongo_client(uri)[database]
    actions = setup_collections(db, spec)
    options = db["missions"].options()
    assert options["validator"] == json_schema(spec, "missions")
    assert (options["validationLevel"], options["validationAction"]) == ("strict", "error")
    with pytest.raises(WriteError, match="Document failed validation"):
        db["missions"].insert_one({"_id": 1, "name": 42})
    version = tuple(mongo_client(uri).server_info()["versionArray"][:2])
    telemetry = db["telemetry"].options()
    if version >= (5, 0):
        assert telemetry["timeseries"]["timeField"] == "recorded_at" and telemetry["expireAfterSeconds"] == 7 * 86400
    else:
        assert any("time-series not supported" in a for a in actions)
    assert all("unchanged" in a for a in setup_collections(db, spec) if "index" in a or "validator" in a)
