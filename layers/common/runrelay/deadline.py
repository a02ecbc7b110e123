"""A time budget shared by every retry loop of one invocation (a Lambda's remaining time)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(frozen=True)
class Deadline:
    expires_at: float  # time.monotonic() value

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    @classmethod
    def for_invocation(cls, context: LambdaContextLike, reserve_seconds: float = 5.0) -> Deadline:
        """The invocation's remaining time less a reserve to record outcomes before Lambda stops us."""
        return cls.after(context.get_remaining_time_in_millis() / 1000.0 - reserve_seconds)

    def remaining(self) -> float:
        return max(0.0, self.expires_at - time.monotonic())
