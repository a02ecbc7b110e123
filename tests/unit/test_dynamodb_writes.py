"""Row writes ride out transient DynamoDB failures that got past botocore's retries, a few times."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from runrelay.adapters.dynamodb import writes


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "PutItem")


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writes.time, "sleep", lambda _seconds: None)


def _failing(*failures: Exception) -> tuple[list[int], Any]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return "written"

    return calls, call


def test_transient_failures_are_tried_again() -> None:
    calls, call = _failing(
        _error("ProvisionedThroughputExceededException"),
        _error("InternalServerError"),
        EndpointConnectionError(endpoint_url="http://x"),
    )
    assert writes.patiently(call) == "written"
    assert len(calls) == 4


def test_a_permanent_failure_is_raised_at_once() -> None:
    calls, call = _failing(_error("ValidationException"))
    with pytest.raises(ClientError):
        writes.patiently(call)
    assert len(calls) == 1


def test_it_gives_up_after_a_few_attempts() -> None:
    calls, call = _failing(*[_error("ThrottlingException")] * 10)
    with pytest.raises(ClientError):
        writes.patiently(call)
    assert len(calls) == 6
