"""S3: whole objects from a stream, multipart for big ones (the results files' writer).

Apart from `adapters.s3` because it imports boto3 for its transfer manager: the functions that only keep
payloads never load boto3 (`aws_clients`).
"""

from __future__ import annotations

from typing import IO, Any

from boto3.s3.transfer import TransferConfig, create_transfer_manager


class S3ObjectWriter:
    """What a client's `upload_fileobj` does, for the plain botocore clients `aws_clients` makes."""

    def __init__(self, *, s3: Any, config: TransferConfig | None = None) -> None:
        self.s3 = s3
        self._config = config or TransferConfig()

    def upload(self, bucket: str, key: str, body: IO[bytes], content_type: str) -> None:
        with create_transfer_manager(self.s3, self._config) as manager:
            extra = {"ContentType": content_type}
            manager.upload(fileobj=body, bucket=bucket, key=key, extra_args=extra).result()
