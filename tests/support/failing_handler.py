"""A handler that always fails, as a function with a bug (or a permanent AccessDenied) would."""

from __future__ import annotations

from typing import Any


def handler(event: Any, context: Any) -> Any:
    raise RuntimeError("a bug: every invocation fails")
