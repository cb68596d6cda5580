"""Staging on s3:// asks for server-side encryption on every object: SSE-S3 by default, SSE-KMS with the spec's key."""

import boto3
import pyarrow as pa
import pytest

from nova_pipeline.core.spec import SpecError, parse_spec
from nova_pipeline.core.staging import for_spec
from nova_pipeline_tests.s3_server import s3_endpoint  # noqa: F401  (fixture)


def _spec(tmp_path, endpoint, **extra):
    return parse_spec({"source": {"sqlite": str(tmp_path / "src.sqlite")}, "tables": {},
                       "staging": f"s3://stage/nova?endpoint_override={endpoint}&scheme=http", **extra})


def _stored(staging, endpoint) -> list[dict]:
    """head_object of every staged object (what S3 recorded about its encryption)."""
    s3 = boto3.client("s3", endpoint_url=f"http://{endpoint}", region_name="us-east-1")
    prefix = staging.root.removeprefix("stage/")  # moto's buckets outlive one server: only this area's objects
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="stage", Prefix=prefix)["Contents"]]
    assert any(k.endswith("part-00000.parquet") for k in keys), keys
    return [s3.head_object(Bucket="stage", Key=k) for k in keys]


def _write(staging):
    table = pa.table({"email": ["a@x.io", "b@x.io"], "_nova_rowid": pa.array([1, 2], pa.int64())})
    staging.write_parts("clean", "users", table.schema, table.to_batches())
    return table


def test_s3_staging_objects_are_written_with_sse_s3_by_default(tmp_path, s3_endpoint):
    staging = for_spec(_spec(tmp_path, s3_endpoint))
    table = _write(staging)
    heads = _stored(staging, s3_endpoint)
    assert {h.get("ServerSideEncryption") for h in heads} == {"AES256"}
    assert pa.Table.from_batches(list(staging.read_batches("clean", "users"))).equals(table)


def test_s3_staging_objects_use_the_spec_kms_key(tmp_path, s3_endpoint):
    staging = for_spec(_spec(tmp_path, s3_endpoint, staging_sse="aws:kms", staging_kms_key_id="alias/nova-staging"))
    _write(staging)
    heads = _stored(staging, s3_endpoint)
    assert {h.get("ServerSideEncryption") for h in heads} == {"aws:kms"}
    assert {h.get("SSEKMSKeyId") for h in heads} == {"alias/nova-staging"}
    assert staging.row_count("clean", "users") == 2


def test_kms_key_id_needs_sse_kms(tmp_path):
    with pytest.raises(SpecError, match="staging_kms_key_id: needs staging_sse: aws:kms"):
        _spec(tmp_path, "127.0.0.1:1", staging_kms_key_id="k")
