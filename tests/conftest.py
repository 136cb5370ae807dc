"""Fixtures shared by the test folders: a real S3-compatible server on 127.0.0.1 (moto's server mode), started for the tests and stopped after, and fsspec's memory store."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import fsspec
import pytest
from moto.server import ThreadedMotoServer

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server of this test session."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch) -> Iterator[tuple[str, dict[str, str]]]:
    """``(s3://bucket, storage_options)`` of a new, empty bucket.

    The environment names the server too (``AWS_ENDPOINT_URL``), for the calls that take no
    ``storage_options`` (``fit``, the command line), as it would name a real store's credentials.
    """
    for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(name, value)
    options = {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    bucket = f"fmfast-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3", **options).mkdir(bucket)
    fsspec.filesystem("s3").invalidate_cache()
    yield f"s3://{bucket}", options


@pytest.fixture
def memory() -> Iterator[str]:
    """A fresh ``memory://`` folder (fsspec's in-process store), removed afterwards."""
    root = f"memory://fmfast-{uuid.uuid4().hex[:12]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)
