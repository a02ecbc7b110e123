"""Submit logic on the fakes (tests/support/fakes.py): rows before POSTs, batching, rejections, crash
healing."""

from __future__ import annotations

import io
import itertools
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import pytest

from local.runware_emulator.openapi_contract import request_item_schema
from runrelay.contract import MAX_SEED, InferenceResult
from runrelay.deadline import Deadline
from runrelay.domain.tasks import TaskStatus
from runrelay.inputs import S3ObjectRef
from runrelay.ports import TaskRepository
from runrelay.runware_errors import TransientRunwareError
from runrelay.submit_logic import SubmitConfig, SubmitService
from runrelay.task_ids import result_task_uuid, task_uuid_for
from runrelay.webhook_token import token_is_valid
from tests.support.fakes import FakeJobRepository, FakeRunware, FakeTaskRepository
from tests.support.s3_events import s3_created_event


def service(
    store: TaskRepository, runware: FakeRunware, objects: dict[str, bytes] | None = None, **config: Any
) -> SubmitService:
    queue: list[str] = []

    def open_object(ref: S3ObjectRef) -> io.BytesIO:
        return io.BytesIO((objects or {})[ref.key][ref.start_byte : ref.end_byte])

    svc = SubmitService(
        store,
        runware,
        # Chunks overlap (the fakes are thread-safe); the pipeline's timing is tested on DynamoDB Local
        # (tests/integration/test_submit_pipeline_dynamodb_local.py).
        SubmitConfig(webhook_base_url="https://hooks.example/", webhook_secret="s", **config),
        open_object=open_object,
        enqueue=queue.append,
    )
    svc.queue = queue  # type: ignore[attr-defined]
    return svc


def statuses(store: TaskRepository, uuids: list[str]) -> list[str]:
    return [v.status for v in (store.get_task(u) for u in uuids) if v]


def test_message_tasks_are_sent_async_with_valid_requests(
    tasks: FakeTaskRepository, runware: FakeRunware
) -> None:
    body = json.dumps(
        [{"id": "a", "prompt": "hi", "settings": {"temperature": 0.7}}, {"prompt": "yo", "numberResults": 3}]
    )
    report = service(tasks, runware).process_record("m1", body, Deadline.after(60))
    assert report.submitted == 2
    [sent] = runware.requests
    validator = jsonschema.Draft202012Validator(
        request_item_schema(), format_checker=jsonschema.FormatChecker()
    )
    # One Runware task per wanted result, each under its own taskUUID with its own webhook address.
    single, triple = report.task_uuids
    wanted = [(single, 0), (triple, 0), (triple, 1), (triple, 2)]
    assert [task["taskUUID"] for task in sent] == [result_task_uuid(uuid, slot) for uuid, slot in wanted]
    for task, (task_uuid, slot) in zip(sent, wanted, strict=True):
        validator.validate(task)
        assert "numberResults" not in task
        assert task["deliveryMethod"] == "async"
        assert task["includeUsage"] is True
        assert task["includeCost"] is True
        url = urlsplit(task["webhookURL"])
        assert (url.scheme, url.netloc, url.path) == ("https", "hooks.example", "/webhooks/runware")
        query = dict(parse_qsl(url.query))
        assert token_is_valid(query.pop("token"), task["taskUUID"], ["s"])
        assert query == ({"task": task_uuid, "result": str(slot)} if slot else {})
    assert statuses(tasks, report.task_uuids) == ["PENDING", "PENDING"]  # open until their results


def test_a_seeded_task_gives_each_result_the_next_seed(
    tasks: FakeTaskRepository, runware: FakeRunware
) -> None:
    body = json.dumps(
        [{"prompt": "a", "numberResults": 3, "seed": MAX_SEED - 1}, {"prompt": "b", "numberResults": 2}]
    )
    service(tasks, runware).process_record("m1", body, Deadline.after(60))
    [sent] = runware.requests
    assert [task.get("seed") for task in sent] == [MAX_SEED - 1, MAX_SEED, 0, None, None]


def test_one_refused_result_rejects_its_task_once(tasks: FakeTaskRepository, runware: FakeRunware) -> None:
    task_uuid = str(task_uuid_for("sqs:m1:0"))
    runware.reject = {result_task_uuid(task_uuid, 1), result_task_uuid(task_uuid, 2)}
    report = service(tasks, runware).process_record(
        "m1", json.dumps({"prompt": "hi", "numberResults": 3}), Deadline.after(60)
    )
    assert (report.submitted, report.rejected) == (0, 1)
    record = tasks.get_task(task_uuid)
    assert record is not None
    assert (record.status, record.error) == (
        TaskStatus.REJECTED,
        {"code": "invalidParameter", "message": "no", "taskUUID": result_task_uuid(task_uuid, 1)},
    )


def test_redelivery_runs_nothing_twice(tasks: FakeTaskRepository, runware: FakeRunware) -> None:
    """A redelivered record sends its open rows again (whether Runware has them is not written down);
    Runware answers conflictTaskUUID and runs nothing twice. A final row is not sent again."""
    svc = service(tasks, runware)
    first = svc.process_record("m1", json.dumps([{"prompt": "hi"}, {"prompt": "yo"}]), Deadline.after(60))
    tasks.store_result(InferenceResult(taskUUID=first.task_uuids[1], text="done"))
    again = svc.process_record("m1", json.dumps([{"prompt": "hi"}, {"prompt": "yo"}]), Deadline.after(60))
    assert (again.submitted, again.already_known) == (1, 1)
    assert [[task["taskUUID"] for task in request] for request in runware.requests] == [
        first.task_uuids,
        first.task_uuids[:1],
    ]
    assert len(runware.known) == 2  # each accepted, and so run, once


def test_transient_failure_leaves_pending_then_heals(tasks: FakeTaskRepository, runware: FakeRunware) -> None:
    svc = service(tasks, runware)
    runware.fail_next = 1
    with pytest.raises(TransientRunwareError):
        svc.process_record("m1", json.dumps({"prompt": "hi"}), Deadline.after(60))
    report = svc.process_record("m1", json.dumps({"prompt": "hi"}), Deadline.after(60))
    assert report.submitted == 1
    assert statuses(tasks, report.task_uuids) == ["PENDING"]
    assert len(runware.known) == 1


def test_malformed_message_and_runware_rejection(tasks: FakeTaskRepository, runware: FakeRunware) -> None:
    svc = service(tasks, runware)
    bad = svc.process_record("bad", "{{{", Deadline.after(60))
    assert bad.rejected == 1
    [view] = [tasks.get_task(u) for u in bad.task_uuids]
    assert view is not None
    assert view.status == TaskStatus.REJECTED
    assert view.source_seq == 1  # numbered from 1 like every other source
    assert view.error is not None
    assert "not valid JSON" in view.error["message"]
    runware.reject.add(str(task_uuid_for("id:refused")))
    report = svc.process_record("m2", json.dumps({"id": "refused", "prompt": "x"}), Deadline.after(60))
    assert report.rejected == 1
    assert statuses(tasks, report.task_uuids) == ["REJECTED"]


def test_jsonl_object_is_batched(tasks: FakeTaskRepository, runware: FakeRunware) -> None:
    lines = [json.dumps({"prompt": f"p{i}"}) for i in range(25)]
    lines.insert(10, "{oops")
    data = ("\n".join(lines) + "\n").encode()
    svc = service(tasks, runware, {"in/a.jsonl": data}, max_tasks_per_request=10)
    event = s3_created_event("b", "in/a.jsonl", len(data))
    report = svc.process_record("m", event, Deadline.after(60))
    assert (report.submitted, report.rejected) == (25, 1)
    assert sorted(len(r) for r in runware.requests) == [6, 9, 10]  # the bad line is not sent
    views = tasks.tasks_of_source("s3://b/in/a.jsonl#e")
    assert len(views) == 26
    assert views[10].status == TaskStatus.REJECTED


def test_big_object_continues_on_the_queue(tasks: FakeTaskRepository, runware: FakeRunware) -> None:
    data = b"".join(json.dumps({"prompt": f"p{i}"}).encode() + b"\n" for i in range(30))
    svc = service(
        tasks, runware, {"big.jsonl": data}, max_tasks_per_request=10, continuation_reserve_seconds=3600
    )
    event = s3_created_event("b", "big.jsonl", len(data))
    first = svc.process_record("m", event, Deadline.after(60))
    assert first.continued
    assert first.submitted == 10
    queue = svc.queue  # type: ignore[attr-defined]
    total = first.submitted
    while queue:
        total += svc.process_record("c", queue.pop(0), Deadline.after(60)).submitted
    assert total == 30
    assert len(tasks.tasks_of_source("s3://b/big.jsonl#e")) == 30


class RecordedTotals(FakeJobRepository):
    """The job repository, remembering every total recorded for which file."""

    def __init__(self) -> None:
        super().__init__()
        self.totals: list[tuple[str, int]] = []

    def record_total(self, source_id: str, total: int, *, bucket: str, key: str, etag: str) -> None:
        self.totals.append((source_id, total))
        super().record_total(source_id, total, bucket=bucket, key=key, etag=etag)


def _mixed_object(lines: int) -> bytes:
    rows = []
    for i in range(lines):
        if i % 50 == 7:
            rows.append(b"")  # blank lines are not tasks, but count as lines
        elif i % 97 == 3:
            rows.append(b"{not json")
        else:
            rows.append(json.dumps({"prompt": f"question {i}"}).encode())
    return b"\n".join(rows) + b"\n"


def test_a_big_object_fans_out_into_ranges_that_submit_as_one_run_would(
    tasks: FakeTaskRepository, runware: FakeRunware
) -> None:
    data = _mixed_object(200)
    svc = service(tasks, runware, {"big.jsonl": data}, max_tasks_per_request=10, fan_out_range_bytes=1000)
    totals = RecordedTotals()
    svc.jobs = totals
    first = svc.process_record("m", s3_created_event("b", "big.jsonl", len(data)), Deadline.after(60))
    assert first.continued
    assert first.fanned_out >= 4
    assert first.submitted == 0
    queue = svc.queue  # type: ignore[attr-defined]
    assert len(queue) == first.fanned_out
    ranges = [json.loads(m)["runrelayContinuation"] for m in queue]
    assert [r["startByte"] for r in ranges] == sorted(r["startByte"] for r in ranges)
    assert ranges[-1]["endByte"] is None  # the last range runs to the end and records the total
    for earlier, later in itertools.pairwise(ranges):
        assert earlier["endByte"] == later["startByte"]
    for message in reversed(queue):  # any order: ranges are independent
        svc.process_record("r", message, Deadline.after(60))
    source = "s3://b/big.jsonl#e"
    views = tasks.tasks_of_source(source)
    expected_lines = [i + 1 for i in range(200) if i % 50 != 7]
    assert sorted(v.source_seq for v in views) == expected_lines
    # The same taskUUIDs a single sequential run derives: the key is the file and the line number.
    assert {v.task_uuid for v in views} == {str(task_uuid_for(f"{source}:{n}")) for n in expected_lines}
    rejected = [v for v in views if v.status == TaskStatus.REJECTED]
    assert len(rejected) == len([i for i in range(200) if i % 97 == 3 and i % 50 != 7])
    assert all(v.error and v.error["message"].startswith(f"line {v.source_seq} ") for v in rejected)
    sent = [t["taskUUID"] for r in runware.requests for t in r]
    assert len(sent) == len(set(sent)) == len(expected_lines) - len(rejected)
    assert totals.totals == [(source, len(expected_lines))]


def test_a_range_out_of_time_continues_within_its_range(
    tasks: FakeTaskRepository, runware: FakeRunware
) -> None:
    data = _mixed_object(200)
    svc = service(tasks, runware, {"big.jsonl": data}, max_tasks_per_request=10, fan_out_range_bytes=1000)
    svc.process_record("m", s3_created_event("b", "big.jsonl", len(data)), Deadline.after(60))
    queue = svc.queue  # type: ignore[attr-defined]
    second_range = queue.pop(1)
    bounds = json.loads(second_range)["runrelayContinuation"]
    hurried = service(
        tasks,
        runware,
        {"big.jsonl": data},
        max_tasks_per_request=10,
        fan_out_range_bytes=1000,
        continuation_reserve_seconds=3600,
    )
    report = hurried.process_record("r", second_range, Deadline.after(60))
    assert report.continued
    assert report.submitted == 10
    [rest] = (json.loads(hurried.queue[0])["runrelayContinuation"],)  # type: ignore[attr-defined]
    assert rest["endByte"] == bounds["endByte"]
    assert bounds["startByte"] < rest["startByte"] < bounds["endByte"]


def test_small_or_taskless_objects_are_not_fanned_out(
    tasks: FakeTaskRepository, runware: FakeRunware
) -> None:
    blank = b"\n" * 10_000
    svc = service(tasks, runware, {"blank.jsonl": blank}, fan_out_range_bytes=1000)
    report = svc.process_record("m", s3_created_event("b", "blank.jsonl", len(blank)), Deadline.after(60))
    assert report.fanned_out == 0
    assert report.rejected == 1  # "holds no task lines", said once, by the sequential path
    assert svc.queue == []  # type: ignore[attr-defined]


def test_rejected_rows_keep_the_caller_id(tasks: FakeTaskRepository, runware: FakeRunware) -> None:
    data = b'{"id": "good", "prompt": "a"}\n{"id": "too-many", "prompt": "b", "numberResults": 9}\n'
    svc = service(tasks, runware, {"in/ids.jsonl": data})
    svc.process_record("m", s3_created_event("b", "in/ids.jsonl", len(data)), Deadline.after(60))
    views = tasks.tasks_of_source("s3://b/in/ids.jsonl#e")
    assert [(v.source_seq, v.status, v.caller_id) for v in views] == [
        (1, TaskStatus.PENDING, "good"),
        (2, TaskStatus.REJECTED, "too-many"),
    ]


def test_a_line_with_a_huge_list_of_problems_is_rejected_and_the_file_goes_on(
    store: TaskRepository, runware: FakeRunware
) -> None:
    # pydantic reports every bad element: unbounded, this line's error alone was over DynamoDB's 400 KB item
    # limit, the chunk's write failed on every delivery and the whole file went to the dead-letter queue.
    huge = json.dumps({"messages": [1] * 20_000})
    lines = [json.dumps({"prompt": "before"}), huge, json.dumps({"prompt": "after"})]
    data = ("\n".join(lines) + "\n").encode()
    svc = service(store, runware, {"in/huge.jsonl": data})
    report = svc.process_record("m", s3_created_event("b", "in/huge.jsonl", len(data)), Deadline.after(60))
    assert (report.submitted, report.rejected) == (2, 1)
    views = store.tasks_of_source("s3://b/in/huge.jsonl#e")
    assert [view.status for view in views] == [TaskStatus.PENDING, TaskStatus.REJECTED, TaskStatus.PENDING]
    error = views[1].error
    assert error is not None
    assert error["code"] == "invalidTaskSpec"
    assert error["message"].startswith("line 2: messages.0: ")
    assert error["message"].endswith("and 19990 more")
    assert len(error["message"]) < 2_000


@pytest.mark.parametrize(
    "s3",
    [
        None,
        {"bucket": {"name": "b"}, "object": {"key": 5, "eTag": "e"}},
        {"bucket": {"name": ""}, "object": {"key": "in/a.jsonl", "eTag": "e"}},
        {"bucket": {"name": "b"}, "object": {"key": "in/a.jsonl", "eTag": "e", "size": "10"}},
        {"bucket": {"name": "b"}, "object": {"key": "in/a.jsonl", "eTag": ["e"]}},
    ],
    ids=["no-s3", "numeric-key", "empty-bucket", "text-size", "list-etag"],
)
def test_a_malformed_s3_notification_is_one_rejected_task(
    tasks: FakeTaskRepository, runware: FakeRunware, s3: Any
) -> None:
    # Before, each raised in the submitter: five receives, then the dead-letter queue, with no row to say why.
    record = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": s3}
    report = service(tasks, runware).process_record(
        "n1", json.dumps({"Records": [record]}), Deadline.after(60)
    )
    assert report.rejected == 1
    [view] = [tasks.get_task(uuid) for uuid in report.task_uuids]
    assert view is not None
    assert view.status == TaskStatus.REJECTED
    assert view.error is not None
    assert view.error["code"] == "malformedNotification"
    assert not runware.requests
