"""The same loads and checks as test_mongo_load.py / test_mongo_setup.py, against a real MongoDB server.

Runs when NOVA_TEST_MONGO_URI names a server (SecantusDB or `docker compose up mongo`, see README: Tests);
skips without it, except under NOVA_REQUIRE_MONGO_SERVER=1 (CI), where it fails. Each test uses its own
database (fixture `mongo_server` in conftest.py), dropped afterwards. Here the server shows what mongomock
cannot: validators, time-series and TTL options, the 16 MiB limit, bulk-write errors, real index listings.
"""

from __future__ import annotations

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


@pytest.mark.parametrize("strategy", ["rename", "upsert"])
def test_full_load_is_idempotent(mongo_server, tmp_path, strategy):
    check_full_load_is_idempotent(*mongo_server, tmp_path, strategy)


def test_window_load_replaces_only_its_window(mongo_server, tmp_path):
    check_window_load_replaces_only_its_window(*mongo_server, tmp_path)


def test_timeseries_load_is_idempotent(mongo_server, tmp_path):
    check_timeseries_load_is_idempotent(*mongo_server, tmp_path)


@pytest.mark.parametrize("mode", ["quarantine", "split"])
def test_oversized_parent_load(mongo_server, tmp_path, mode):
    check_oversized_parent_load(*mongo_server, tmp_path, mode)


def test_validator_and_timeseries_are_applied(mongo_server, tmp_path):
    uri, database = mongo_server
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
