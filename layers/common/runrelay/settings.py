"""Runtime settings, read once per container from the environment the template sets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache

from pydantic import BaseModel, Field

DEFAULT_RUNWARE_API_URL = "https://api.runware.ai/v1"


class RuntimeSettings(BaseModel):
    """Every knob a function reads; names are the environment variables of template.yaml."""

    table_name: str = Field(alias="TABLE_NAME", min_length=1)
    runware_api_url: str = Field(alias="RUNWARE_API_URL", default=DEFAULT_RUNWARE_API_URL)
    runware_api_key_secret_id: str | None = Field(alias="RUNWARE_API_KEY_SECRET_ID", default=None)
    webhook_secret_id: str | None = Field(alias="WEBHOOK_SECRET_ID", default=None)
    webhook_base_url: str | None = Field(alias="WEBHOOK_BASE_URL", default=None)
    payload_bucket: str | None = Field(alias="PAYLOAD_BUCKET", default=None)
    ingest_queue_url: str | None = Field(alias="INGEST_QUEUE_URL", default=None)
    max_tasks_per_request: int = Field(alias="MAX_TASKS_PER_REQUEST", default=100, ge=1, le=1000)
    max_webhook_body_bytes: int = Field(alias="MAX_WEBHOOK_BODY_BYTES", default=1_048_576, ge=1024)
    overdue_after_seconds: int = Field(alias="OVERDUE_AFTER_SECONDS", default=900, ge=1)
    max_task_age_seconds: int = Field(alias="MAX_TASK_AGE_SECONDS", default=86_400, ge=1)
    task_retention_days: int = Field(alias="TASK_RETENTION_DAYS", default=30, ge=1)
    event_bus_name: str | None = Field(alias="EVENT_BUS_NAME", default=None)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> RuntimeSettings:
        known = {field.alias for field in cls.model_fields.values() if field.alias}
        return cls.model_validate({k: v for k, v in environ.items() if k in known})


@cache
def settings() -> RuntimeSettings:
    """The container's settings (cached: the environment of a Lambda container never changes)."""
    return RuntimeSettings.from_environ(os.environ)
