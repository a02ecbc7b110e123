"""Typed Runware failures: permanent ones are never retried, transient ones are retried until the deadline."""

from __future__ import annotations

from .contract import RunwareError


class RunwareApiError(Exception):
    """Runware answered with an error (or did not answer); carries the documented error items."""

    def __init__(self, status: int | None, errors: list[RunwareError], detail: str = "") -> None:
        self.status = status
        self.errors = errors
        first = errors[0] if errors else RunwareError(code="unknown", message=detail)
        self.code = first.code
        self.parameter = first.parameter
        self.task_uuid = first.taskUUID
        self.error_message = first.message or detail
        where = f" (parameter {first.parameter})" if first.parameter else ""
        super().__init__(f"Runware HTTP {status}: {first.code}: {self.error_message}{where}")


class PermanentRunwareError(RunwareApiError):
    """Retrying the same request cannot succeed (bad parameters, key, balance or permission)."""


class InvalidRequestError(PermanentRunwareError):
    """400: a parameter is invalid; `parameter` names it."""


class AuthenticationError(PermanentRunwareError):
    """401: missing or invalid API key."""


class InsufficientBalanceError(PermanentRunwareError):
    """402: the account has no balance left."""


class PermissionDeniedError(PermanentRunwareError):
    """403: the key may not do this."""


class TransientRunwareError(RunwareApiError):
    """429, 5xx, timeouts or resets that outlasted the caller's deadline."""


PERMANENT_BY_STATUS: dict[int, type[PermanentRunwareError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: InsufficientBalanceError,
    403: PermissionDeniedError,
}
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
