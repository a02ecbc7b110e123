"""The ingest-queue body S3 sends when an object is created (one record), as the submitter receives it."""

from __future__ import annotations

import json


def s3_created_event(bucket: str, key: str, size: int, etag: str = "e") -> str:
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "eTag": etag, "size": size}},
    }
    return json.dumps({"Records": [record]})
