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


class _StatementsAnswered:
    """A DynamoDB client whose BatchExecuteStatement answers each statement from a script: per call, a
    list of error codes (None: written), in the order of the statements sent."""

    def __init__(self, *answers: list[str | None]) -> None:
        self.answers = list(answers)
        self.sent: list[list[dict[str, Any]]] = []

    def batch_execute_statement(self, Statements: list[dict[str, Any]]) -> dict[str, Any]:
        self.sent.append(Statements)
        codes = self.answers.pop(0)
        assert len(codes) == len(Statements)
        return {"Responses": [{"Error": {"Code": code, "Message": "m"}} if code else {} for code in codes]}


def _items(count: int) -> list[dict[str, Any]]:
    return [{"pk": {"S": f"TASK#{n}"}, "sk": {"S": "TASK"}, "status": {"S": "PENDING"}} for n in range(count)]


def test_insert_batch_sends_again_only_the_statements_that_failed_transiently() -> None:
    client = _StatementsAnswered(
        [None, "ThrottlingError", "DuplicateItem", "InternalServerError"],
        [None, "TransactionConflict"],
        [None],
    )
    assert writes.insert_batch(client, "tasks-table", _items(4)) == [2]
    resent = [[statement["Parameters"][0]["S"] for statement in call] for call in client.sent]
    assert resent == [["TASK#0", "TASK#1", "TASK#2", "TASK#3"], ["TASK#1", "TASK#3"], ["TASK#3"]]
    statement = client.sent[0][0]
    assert statement["Statement"] == """INSERT INTO "tasks-table" VALUE {'pk': ?, 'sk': ?, 'status': ?}"""


def test_insert_batch_raises_a_statement_error_of_ours_and_gives_up_on_lasting_throttling() -> None:
    with pytest.raises(ClientError, match="ValidationError"):
        writes.insert_batch(_StatementsAnswered([None, "ValidationError"]), "t", _items(2))
    lasting = _StatementsAnswered(*[["ThrottlingError"]] * 10)
    with pytest.raises(ClientError, match="ThrottlingError"):
        writes.insert_batch(lasting, "t", _items(1))
    assert len(lasting.sent) == 6


def test_insert_batch_takes_25_items_and_only_plain_attribute_names() -> None:
    with pytest.raises(ValueError, match="at most 25"):
        writes.insert_batch(_StatementsAnswered(), "t", _items(26))
    with pytest.raises(ValueError, match="cannot be written"):
        writes.insert_batch(_StatementsAnswered(), "t", [{"pk": {"S": "x"}, "a'b": {"S": "y"}}])


class _FlakyReads:
    """A DynamoDB client whose reads fail transiently `failures` times before answering."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise _error("ProvisionedThroughputExceededException")

    def get_item(self, **_: Any) -> dict[str, Any]:
        self._maybe_fail()
        return {}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail()
        (table, request), *_ = RequestItems.items()
        return {"Responses": {table: [{**key, "status": {"S": "PENDING"}} for key in request["Keys"]]}}


def test_the_submitters_reads_before_each_chunk_ride_out_a_spent_retry_quota() -> None:
    from runrelay.adapters.dynamodb.jobs import DynamoJobRepository
    from runrelay.adapters.dynamodb.tasks import DynamoTaskRepository
    from runrelay.domain.tasks import TaskStatus

    flaky = _FlakyReads(failures=3)
    assert DynamoJobRepository("t", dynamodb=flaky).cancellation("s3://b/k#e") is None
    assert flaky.calls == 4
    flaky = _FlakyReads(failures=3)
    assert DynamoTaskRepository("t", dynamodb=flaky)._statuses(["a", "b"]) == {
        "a": TaskStatus.PENDING,
        "b": TaskStatus.PENDING,
    }
    assert flaky.calls == 4


class _FlakyPages(_FlakyReads):
    """Also a Query of three pages, each failing transiently once before it is answered."""

    def __init__(self) -> None:
        super().__init__(failures=0)
        self.asked: list[int] = []

    def query(self, **params: Any) -> dict[str, Any]:
        start = params.get("ExclusiveStartKey")
        page = 0 if start is None else int(start["n"]["N"])
        self.asked.append(page)
        if self.asked.count(page) == 1:
            raise EndpointConnectionError(endpoint_url="http://x")
        answer: dict[str, Any] = {"Items": [{"n": {"N": str(page)}}]}
        if page < 2:
            answer["LastEvaluatedKey"] = {"n": {"N": str(page + 1)}}
        return answer


def test_a_querys_pages_ride_out_transient_failures_page_by_page() -> None:
    from runrelay.adapters.dynamodb.reads import query_pages

    client = _FlakyPages()
    pages = list(query_pages(client, TableName="t", KeyConditionExpression="k = :k"))
    assert [page["Items"][0]["n"]["N"] for page in pages] == ["0", "1", "2"]
    # Each page was asked twice (once failing), and a failure re-asked only its own page.
    assert client.asked == [0, 0, 1, 1, 2, 2]


def test_the_reconcilers_reads_ride_out_a_spent_retry_quota() -> None:
    from runrelay.adapters.dynamodb.reads import batch_get

    flaky = _FlakyReads(failures=3)
    keys = [{"pk": {"S": f"TASK#{n}"}, "sk": {"S": "TASK"}} for n in range(150)]
    assert len(list(batch_get(flaky, "t", keys))) == 150
    assert flaky.calls == 5  # two requests of at most 100 keys, the first tried four times
