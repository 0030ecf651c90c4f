"""A local S3-compatible endpoint with KMS on loopback (moto's server), for the demo and tests.

Real HTTP, so the product code talks to it exactly as it would to AWS or MinIO: through the
``AWS_ENDPOINT_URL`` that boto3 reads itself. Never used in production.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

from handoff.errors import ConfigError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalS3:
    endpoint: str
    server: Any
    kms_key_id: str | None = None
    previous: dict[str, str | None] | None = None  # the environment it replaced, put back on stop

    def stop(self) -> None:
        self.server.stop()
        for k, v in (self.previous or {}).items():
            if os.environ.get(k) != self.endpoint and k.startswith("AWS_ENDPOINT"):
                continue  # someone else pointed boto3 elsewhere since: leave theirs
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_ENV = {
    "AWS_ACCESS_KEY_ID": "handoff-local",
    "AWS_SECRET_ACCESS_KEY": "handoff-local-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def start(region: str = "us-east-1") -> LocalS3:
    """Start the endpoint and point this process's boto3 at it."""
    import logging

    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise ConfigError(
            "the local S3 endpoint needs moto: pip install 'handoff[local]' (or use ./dev, which "
            "installs it), or point AWS_ENDPOINT_URL at a real S3 or MinIO"
        ) from None

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for k, v in _ENV.items():
        os.environ.setdefault(k, v)
    previous = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION")}
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
    os.environ["AWS_DEFAULT_REGION"] = region
    return LocalS3(endpoint, server, previous=previous)


def create_bucket(local: LocalS3, bucket: str, region: str = "us-east-1", object_lock: bool = False,
                  versioned: bool = True) -> str:  # fmt: skip
    """Create a KMS key and a bucket (versioned, as ``infra/terraform`` makes it); return the key id."""
    import boto3

    kms = boto3.client("kms", region_name=region)
    key_id = str(kms.create_key(Description=f"handoff {bucket}")["KeyMetadata"]["KeyId"])
    s3 = boto3.client("s3", region_name=region)
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=object_lock)
    if versioned and not object_lock:  # object lock turns versioning on by itself
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    local.kms_key_id = key_id
    return key_id
