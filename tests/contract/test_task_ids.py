"""Deterministic task UUIDs: same key, same UUID; UUID v4 shaped; valid for the schema's `format: uuid`."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runrelay.contract import Message, TextInferenceTask
from runrelay.task_ids import task_uuid_for
from tests.contract.schema import item_validator, schema_errors

keys = st.text(max_size=60)


@settings(max_examples=200, deadline=None)
@given(keys)
def test_same_key_same_uuid(key: str) -> None:
    assert task_uuid_for(key) == task_uuid_for(key)


@settings(max_examples=300, deadline=None)
@given(st.lists(keys, min_size=2, max_size=20, unique=True))
def test_distinct_keys_give_distinct_uuids(distinct_keys: list[str]) -> None:
    assert len({task_uuid_for(key) for key in distinct_keys}) == len(distinct_keys)


@pytest.mark.parametrize(
    ("a", "b"),
    [("a", "A"), ("a", "a "), ("key", "key\x00"), ("", " "), ("é", "e\u0301")],  # near-identical keys
)
def test_near_identical_keys_differ(a: str, b: str) -> None:
    assert task_uuid_for(a) != task_uuid_for(b)


@settings(max_examples=200, deadline=None)
@given(keys)
def test_uuid_is_version_4_with_rfc_4122_variant_and_valid_for_the_schema(key: str) -> None:
    value = task_uuid_for(key)
    assert value.version == 4
    assert value.variant == uuid.RFC_4122
    text = str(value)
    assert text[14] == "4"
    assert text[19] in "89ab"
    assert uuid.UUID(text) == value
    request = TextInferenceTask(taskUUID=value, messages=[Message(role="user", content="x")]).to_request()
    assert request["taskUUID"] == text
    assert schema_errors(item_validator(), request) == []


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("s3://inbox/prompts/a.json#etag-1", "780dd628-b540-4cba-b7b4-4ec44a55b31c"),
        ("", "9513dc79-7066-4f57-bdb1-1851a38c3156"),
        ("sqs:msg-1", "abe55a4a-9dbd-4e63-a81c-c7b56320c1ea"),
    ],
)
def test_derivation_is_stable_across_releases(key: str, expected: str) -> None:
    """Changing the derivation would give tasks already sent to Runware a new UUID: a second paid run."""
    assert str(task_uuid_for(key)) == expected
