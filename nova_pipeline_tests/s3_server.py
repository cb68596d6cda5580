"""A local S3 server (moto) for tests of object-storage staging; `s3_endpoint` is its host:port with a bucket `stage`."""

import socket

import pyarrow.fs as pafs
import pytest

moto_server = pytest.importorskip("moto.server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fix_moto_complete_multipart(monkeypatch) -> None:
    """moto 5.2.1 names the CompleteMultipartUpload reply's root element wrongly (getmoto/moto#10055), which
    pyarrow treats as an error embedded in a 200 OK; rename it to what S3 sends."""
    from moto.s3.responses import S3Response

    serialized = S3Response.serialized

    def fixed(self, result):
        status, headers, body = serialized(self, result)
        if self.data.get("Action") == "CompleteMultipartUpload" and isinstance(body, (str, bytes)):
            old, new = "CompleteMultipartUploadResponse", "CompleteMultipartUploadResult"
            body = body.replace(old, new) if isinstance(body, str) else body.replace(old.encode(), new.encode())
        return status, headers, body

    monkeypatch.setattr(S3Response, "serialized", fixed)


@pytest.fixture
def s3_endpoint(monkeypatch):
    _fix_moto_complete_multipart(monkeypatch)
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                 "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1",
                           allow_bucket_creation=True)
    fs.create_dir("stage")
    yield f"127.0.0.1:{port}"
    server.stop()
