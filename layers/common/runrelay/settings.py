"""Runtime settings, read once per container from the environment the template sets.

A plain dataclass rather than a pydantic model: building a model class at import is a large share of
the webhook's cold start (bench/README.md, cold_import). Values are still checked, with clear errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any

DEFAULT_RUNWARE_API_URL = "https://api.runware.ai/v1"
BACK_PRESSURE_MODES = ("shared", "local")


def _env(name: str, default: Any = None, **bounds: int) -> Any:
    """A field read from the environment variable `name`, with its default; integer fields carry their
    bounds. A string field without a default must be set."""
    return field(metadata={"env": name, "default": default, **bounds})


@dataclass(frozen=True)
class RuntimeSettings:
    """Every knob a function reads; names are the environment variables of template.yaml."""

    table_name: str = _env("TABLE_NAME")
    runware_api_url: str = _env("RUNWARE_API_URL", DEFAULT_RUNWARE_API_URL)
    runware_api_key_secret_id: str | None = _env("RUNWARE_API_KEY_SECRET_ID")
    webhook_secret_id: str | None = _env("WEBHOOK_SECRET_ID")
    webhook_base_url: str | None = _env("WEBHOOK_BASE_URL")
    payload_bucket: str | None = _env("PAYLOAD_BUCKET")
    ingest_queue_url: str | None = _env("INGEST_QUEUE_URL")
    event_bus_name: str | None = _env("EVENT_BUS_NAME")
    max_tasks_per_request: int = _env("MAX_TASKS_PER_REQUEST", 100, ge=1, le=1000)
    fan_out_range_bytes: int = _env("FAN_OUT_RANGE_BYTES", 16 * 1024 * 1024, ge=0)
    max_webhook_body_bytes: int = _env("MAX_WEBHOOK_BODY_BYTES", 1_048_576, ge=1024)
    overdue_after_seconds: int = _env("OVERDUE_AFTER_SECONDS", 900, ge=1)
    max_task_age_seconds: int = _env("MAX_TASK_AGE_SECONDS", 86_400, ge=1)
    reconcile_max_tasks_per_run: int = _env("RECONCILE_MAX_TASKS_PER_RUN", 20_000, ge=1, le=1_000_000)
    task_retention_days: int = _env("TASK_RETENTION_DAYS", 30, ge=1)
    # shared: after a 429/503 every environment obeys one throttle record in the table (back_pressure.py);
    # local: each environment backs off alone.
    runware_back_pressure: str = _env("RUNWARE_BACK_PRESSURE", "shared")
    # Spend caps (domain/budgets.py): the stack's per UTC day (0: none), and a result's reckoned cost.
    daily_budget_usd: float = _env("DAILY_BUDGET_USD", 0.0)
    estimated_cost_per_result_usd: float = _env("ESTIMATED_COST_PER_RESULT_USD", 0.001)

    def __post_init__(self) -> None:
        if self.runware_back_pressure not in BACK_PRESSURE_MODES:
            modes = ", ".join(BACK_PRESSURE_MODES)
            raise ValueError(
                f"environment variable RUNWARE_BACK_PRESSURE must be one of {modes}, "
                f"got {self.runware_back_pressure!r}"
            )

    @classmethod
    def environment_names(cls) -> frozenset[str]:
        return frozenset(f.metadata["env"] for f in fields(cls))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> RuntimeSettings:
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            raw = environ.get(name, "").strip()
            default = f.metadata["default"]
            if f.type == "int":
                values[f.name] = _bounded_int(name, raw, default, f.metadata)
            elif f.type == "float":
                values[f.name] = _dollars(name, raw, default)
            elif raw:
                values[f.name] = raw
            elif f.type == "str" and default is None:
                raise ValueError(f"environment variable {name} must be set")
            else:
                values[f.name] = default
        return cls(**values)


def _bounded_int(name: str, raw: str, default: Any, bounds: Mapping[str, Any]) -> int:
    if not raw:
        return int(default)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be a whole number, got {raw!r}") from None
    low, high = bounds.get("ge"), bounds.get("le")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"environment variable {name} must be between {low} and {high or '∞'}, got {value}")
    return value


def _dollars(name: str, raw: str, default: float) -> float:
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be a number of dollars, got {raw!r}") from None
    if not 0 <= value < 1e9:
        raise ValueError(f"environment variable {name} must be between 0 and 1e9 dollars, got {value}")
    return value


@cache
def settings() -> RuntimeSettings:
    """The container's settings (cached: the environment of a Lambda container never changes)."""
    return RuntimeSettings.from_environ(os.environ)
