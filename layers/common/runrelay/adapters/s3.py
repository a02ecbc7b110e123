"""S3: the payload store (result texts too large for a DynamoDB item); the results files' writer is
`adapters.s3_uploads`."""

from __future__ import annotations

from typing import Any

from ..aws_clients import client


class S3PayloadStore:
    def __init__(self, bucket: str, *, s3: Any = None) -> None:
        self.bucket = bucket
        self._s3 = s3

    @property
    def s3(self) -> Any:
        # Made on first use: most tasks never offload, and an S3 client costs the webhook's cold start.
        if self._s3 is None:
            self._s3 = client("s3")
        return self._s3

    def put(self, key: str, body: bytes) -> str:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return f"s3://{self.bucket}/{key}"

    def get(self, ref: str) -> bytes:
        bucket, _, key = ref.removeprefix("s3://").partition("/")
        body: bytes = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body
