"""Input parsing: every body kind, streamed JSONL with bad lines, and clear rejections."""

from __future__ import annotations

import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from runrelay.inputs import (
    MAX_LINE_BYTES,
    IgnoredMessage,
    Rejection,
    S3ObjectRef,
    SqsTaskMessage,
    TaskSpec,
    classify_sqs_body,
    continuation_message,
    items_of_message,
    items_of_object,
    refused_message,
    split_jsonl,
)
from runrelay.task_ids import line_key


def s3_event(key: str, etag: str = "abc") -> str:
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "in"}, "object": {"key": key, "eTag": etag, "size": 10, "versionId": "v1"}},
    }
    return json.dumps({"Records": [record]})


def test_s3_notification_keys_are_url_decoded() -> None:
    refs = classify_sqs_body("m", s3_event("incoming%2Fmy+file%C3%A9.jsonl"))
    assert isinstance(refs, list)
    assert refs[0].key == "incoming/my fileé.jsonl"
    assert refs[0].source_id == "s3://in/incoming/my fileé.jsonl#abc"


def test_test_event_and_non_created_records_are_ignored() -> None:
    assert isinstance(classify_sqs_body("m", json.dumps({"Event": "s3:TestEvent"})), IgnoredMessage)
    removed = json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete"}]})
    assert isinstance(classify_sqs_body("m", removed), IgnoredMessage)


def test_malformed_body_is_a_rejection() -> None:
    kind = classify_sqs_body("m", "{not json")
    assert isinstance(kind, Rejection)
    assert "not valid JSON" in kind.message


def test_message_specs_and_keys() -> None:
    message = SqsTaskMessage("m1", [{"id": "mine", "prompt": "a"}, {"prompt": "b"}, {"prompt": ""}, 7])
    items = list(items_of_message(message))
    assert [i.idempotency_key for i in items] == ["id:mine", "sqs:m1:1", "sqs:m1:2", "sqs:m1:3"]
    assert isinstance(items[0].spec, TaskSpec)
    assert isinstance(items[2].spec, Rejection)
    assert "prompt" in items[2].spec.message
    assert isinstance(items[3].spec, Rejection)


def test_spec_needs_exactly_one_of_prompt_and_messages() -> None:
    both = list(
        items_of_message(SqsTaskMessage("m", {"prompt": "a", "messages": [{"role": "user", "content": "b"}]}))
    )
    neither = list(items_of_message(SqsTaskMessage("m", {"numberResults": 2})))
    for item in both + neither:
        assert isinstance(item.spec, Rejection)
        assert "exactly one" in item.spec.message


def test_jsonl_streams_lines_and_rejects_bad_ones_in_place() -> None:
    lines = [
        json.dumps({"prompt": "one"}),
        "{broken",
        "",
        json.dumps({"prompt": "two", "numberResults": 9}),
        "\xff",
    ]
    data = "\n".join(lines).encode("latin-1")
    ref = S3ObjectRef("in", "incoming/x.jsonl", "e", size=len(data))
    produced = list(items_of_object(ref, io.BytesIO(data)))
    seqs = [item.seq for item, _ in produced]
    assert seqs == [1, 2, 4, 5]
    kinds = [type(item.spec).__name__ for item, _ in produced]
    assert kinds == ["TaskSpec", "Rejection", "Rejection", "Rejection"]
    assert produced[-1][1] == len(data)
    messages = [item.spec.message for item, _ in produced if isinstance(item.spec, Rejection)]
    assert messages[0].startswith("line 2")
    assert "numberResults" in messages[1]
    assert "UTF-8" in messages[2]


def test_jsonl_continuation_resumes_with_same_keys() -> None:
    data = b"".join(json.dumps({"prompt": f"p{i}"}).encode() + b"\n" for i in range(5))
    ref = S3ObjectRef("in", "k.jsonl", "e", size=len(data))
    whole = list(items_of_object(ref, io.BytesIO(data)))
    item, offset = whole[1]
    resumed_kind = classify_sqs_body("m", continuation_message(ref, offset, item.seq))
    assert isinstance(resumed_kind, list)
    resumed = resumed_kind[0]
    rest = list(items_of_object(resumed, io.BytesIO(data[offset:])))
    assert [i.idempotency_key for i, _ in rest] == [i.idempotency_key for i, _ in whole[2:]]


def test_plain_text_json_and_empty_objects() -> None:
    text = list(items_of_object(S3ObjectRef("in", "a.txt", "e"), io.BytesIO(b"Tell me a story")))
    assert isinstance(text[0][0].spec, TaskSpec)
    assert text[0][0].spec.prompt == "Tell me a story"
    array = list(
        items_of_object(S3ObjectRef("in", "a.json", "e"), io.BytesIO(b'[{"prompt": "a"}, {"prompt": "b"}]'))
    )
    assert [i.seq for i, _ in array] == [1, 2]
    for name, data in [("e.txt", b"  \n"), ("e.jsonl", b""), ("e.json", b"[]"), ("bad.txt", b"\xff\xfe")]:
        [(item, _)] = list(items_of_object(S3ObjectRef("in", name, "e"), io.BytesIO(data)))
        assert isinstance(item.spec, Rejection), name


def test_incomplete_continuation_is_rejected() -> None:
    kind = classify_sqs_body("m", json.dumps({"runrelayContinuation": {"bucket": "b"}}))
    assert isinstance(kind, Rejection)


def test_every_source_numbers_its_tasks_from_one() -> None:
    sqs = list(items_of_message(SqsTaskMessage("m", [{"prompt": "a"}, {"prompt": "b"}])))
    single = list(items_of_message(SqsTaskMessage("m", {"prompt": "a"})))
    jsonl = list(items_of_object(S3ObjectRef("in", "a.jsonl", "e"), io.BytesIO(b'{"prompt": "a"}\n')))
    json_array = list(items_of_object(S3ObjectRef("in", "a.json", "e"), io.BytesIO(b'[{"prompt": "a"}]')))
    text = list(items_of_object(S3ObjectRef("in", "a.txt", "e"), io.BytesIO(b"Tell me a story")))
    empty = list(items_of_object(S3ObjectRef("in", "e.jsonl", "e"), io.BytesIO(b"")))
    assert [i.seq for i in sqs] == [1, 2]
    assert [i.seq for i in single] == [1]
    assert [[i.seq for i, _ in found] for found in (jsonl, json_array, text, empty)] == [[1], [1], [1], [1]]


def test_keys_keep_the_positions_earlier_releases_used() -> None:
    """A message or object submitted before seq became 1-based must map to the same taskUUIDs."""
    sqs = list(items_of_message(SqsTaskMessage("m", [{"prompt": "a"}, {"prompt": "b"}])))
    assert [i.idempotency_key for i in sqs] == ["sqs:m:0", "sqs:m:1"]
    [(text, _)] = items_of_object(S3ObjectRef("in", "a.txt", "e"), io.BytesIO(b"Tell me a story"))
    assert text.idempotency_key == "s3://in/a.txt#e:0"
    [(line, _)] = items_of_object(S3ObjectRef("in", "a.jsonl", "e"), io.BytesIO(b'{"prompt": "a"}\n'))
    assert line.idempotency_key == "s3://in/a.jsonl#e:1"
    [(empty, _)] = items_of_object(S3ObjectRef("in", "e.jsonl", "e"), io.BytesIO(b""))
    assert empty.idempotency_key == "s3://in/e.jsonl#e:0"


def test_every_task_without_a_caller_id_is_keyed_by_its_line() -> None:
    """The table finds such a task from its tally's line alone (`line_key`): the key inputs give and the
    key the line gives must be the same for every kind of input, blank lines, refusals and `.JSONL` too."""
    jsonl = b'{"prompt": "a"}\n\n  \n{"id": "x", "prompt": "b"}\nnot json\n{"prompt": "c"}'
    objects = {
        "a.jsonl": jsonl,
        "B.NDJSON": jsonl,
        "UP.JSONL": jsonl,
        "dir#1/a.json": b'[{"prompt": "a"}, {"prompt": "b", "seed": -1}, {"id": "y", "prompt": "c"}]',
        "one.json": b'{"prompt": "a"}',
        "bad.json": b"[",
        "a.txt": b"Tell me a story",
        "empty.txt": b"  ",
    }
    items = [
        item
        for key, body in objects.items()
        for item, _ in items_of_object(S3ObjectRef("in", key, "e"), io.BytesIO(body))
    ]
    items += list(items_of_message(SqsTaskMessage("m", [{"prompt": "a"}, {"id": "z", "prompt": "b"}, 3])))
    items.append(refused_message("m2", Rejection("malformedMessage", "not JSON")))
    # An SQS spec's id is its key; an S3 line keeps its line when it carries an id.
    by_id = [item for item in items if item.idempotency_key.startswith("id:")]
    assert [(item.source_id, item.seq, item.idempotency_key) for item in by_id] == [("sqs:m", 2, "id:z")]
    by_line = [item for item in items if item not in by_id]
    assert len(by_line) == 22
    assert [item.seq for item in by_line if item.source_id.endswith("/a.jsonl#e")] == [1, 4, 5, 6]
    for item in by_line:
        assert item.idempotency_key == line_key(item.source_id, item.seq), item


def test_the_refusal_of_a_jsonl_object_without_lines_is_not_keyed_by_a_line() -> None:
    [(empty, _)] = items_of_object(S3ObjectRef("in", "e.jsonl", "e"), io.BytesIO(b"\n\n"))
    assert empty.seq == 1
    assert empty.idempotency_key != line_key(empty.source_id, empty.seq)


def test_refused_specs_keep_the_caller_id_but_do_not_use_it_up() -> None:
    [valid, refused] = items_of_message(
        SqsTaskMessage("m", [{"id": "ok-1", "prompt": "a"}, {"id": "bad-1", "prompt": "b", "seed": -1}])
    )
    assert (valid.caller_id, valid.idempotency_key) == ("ok-1", "id:ok-1")
    assert isinstance(refused.spec, Rejection)
    # The corrected spec may come again under the same id: the refused one is keyed by its place.
    assert (refused.caller_id, refused.idempotency_key) == ("bad-1", "sqs:m:1")
    data = b'{"id": "line-1", "prompt": "a"}\n{"id": "line-2", "numberResults": 9, "prompt": "b"}\n'
    lines = [item for item, _ in items_of_object(S3ObjectRef("in", "a.jsonl", "e"), io.BytesIO(data))]
    assert [(i.caller_id, type(i.spec).__name__) for i in lines] == [
        ("line-1", "TaskSpec"),
        ("line-2", "Rejection"),
    ]


def test_a_redriven_message_is_keyed_on_its_first_message_id() -> None:
    from runrelay.sqs_records import REDRIVE_MESSAGE_ID_ATTRIBUTE, idempotency_message_id

    record = {"messageId": "new-id", "messageAttributes": {}}
    assert idempotency_message_id(record) == "new-id"
    redriven = {
        "messageId": "new-id",
        "messageAttributes": {
            REDRIVE_MESSAGE_ID_ATTRIBUTE: {"stringValue": "first-id", "dataType": "String"}
        },
    }
    assert idempotency_message_id(redriven) == "first-id"
    empty = {"messageId": "new-id", "messageAttributes": {REDRIVE_MESSAGE_ID_ATTRIBUTE: {"stringValue": ""}}}
    assert idempotency_message_id(empty) == "new-id"


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300).map(lambda b: b.replace(b"\x00", b"\n")), chunk=st.integers(1, 17))
def test_lines_are_the_body_cut_after_each_newline_whatever_the_chunks(data: bytes, chunk: int) -> None:
    import runrelay.inputs as inputs

    original = inputs._READ_CHUNK
    inputs._READ_CHUNK = chunk  # lines spanning many reads, newlines at every place in a read
    try:
        *complete, last = data.split(b"\n")
        expected = [line + b"\n" for line in complete] + ([last] if last else [])
        assert list(inputs._lines(io.BytesIO(data))) == expected
    finally:
        inputs._READ_CHUNK = original


def test_a_line_over_the_limit_is_rejected_in_place_and_never_held_whole() -> None:
    # Before, its bytes were joined chunk by chunk (copied again for every 256 KB read) and parsed whole.
    overlong = b"x" * (MAX_LINE_BYTES + 1) + b"\n"
    data = b'{"prompt": "a"}\n' + overlong + b'{"prompt": "b"}\n'
    ref = S3ObjectRef("in", "big.jsonl", "e", size=len(data))
    items = list(items_of_object(ref, io.BytesIO(data)))
    assert [item.seq for item, _ in items] == [1, 2, 3]
    assert [offset for _, offset in items] == [16, 16 + len(overlong), len(data)]
    rejection = items[1][0].spec
    assert isinstance(rejection, Rejection)
    assert rejection.code == "lineTooLong"
    assert rejection.message.startswith(f"line 2 is {len(overlong)} bytes")
    assert isinstance(items[2][0].spec, TaskSpec)
    # The fan-out counts it as the task it is, so a range's line and task numbers agree with a whole run.
    [whole] = list(split_jsonl(ref, io.BytesIO(data), range_bytes=len(data) + 1))
    assert (whole.end_line, whole.end_task, whole.end_byte) == (3, 3, len(data))


def test_an_sqs_spec_its_row_could_not_hold_beside_its_results_is_refused() -> None:
    # Its row keeps the spec whole: with four results inline it would pass DynamoDB's item size, and every
    # result's write would fail (the webhook answered 500 for ever). One result leaves room for it.
    prompt = "p" * 200_000
    message = SqsTaskMessage("m1", [{"prompt": prompt, "numberResults": 4}, {"prompt": prompt}])
    crowded, roomy = (item.spec for item in items_of_message(message))
    assert isinstance(crowded, Rejection)
    assert crowded.code == "specTooLarge"
    assert "send it in an S3 file" in crowded.message
    assert isinstance(roomy, TaskSpec)
