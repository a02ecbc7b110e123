"""The DynamoDB codec: `to_dynamo` writes JSON-like data exactly as boto3 would write its JSON form, and
keeps as text what DynamoDB cannot hold; `from_dynamo` reads plain values back."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from runrelay.adapters.dynamodb.codec import MAX_STORED_DEPTH, from_dynamo, to_dynamo

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**37), max_value=10**37)
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e100, max_value=1e100).filter(
        lambda number: number == 0 or abs(number) > 1e-100  # DynamoDB's range ends at 1e-130
    )
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
)
_JSON_LIKE = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _via_boto3(value: Any) -> dict[str, Any]:
    """The reference: the value's JSON read back with Decimals, serialised by boto3."""
    return TypeSerializer().serialize(json.loads(json.dumps(value), parse_float=Decimal))


@settings(max_examples=300, deadline=None)
@given(_JSON_LIKE)
def test_storable_values_are_written_as_boto3_writes_their_json(value: Any) -> None:
    assert to_dynamo(value) == _via_boto3(value)


@settings(max_examples=200, deadline=None)
@given(_JSON_LIKE)
def test_what_is_written_reads_back_as_the_json_value(value: Any) -> None:
    expected = json.loads(json.dumps(value), parse_float=Decimal)
    assert TypeDeserializer().deserialize(to_dynamo(value)) == expected


def _plain_via_boto3(value: Any) -> Any:
    """The reference reading: boto3's deserializer, its Decimals as the int or float they hold."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain_via_boto3(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_via_boto3(item) for item in value]
    return value


@settings(max_examples=200, deadline=None)
@given(_JSON_LIKE)
def test_items_read_back_as_boto3_reads_them(value: Any) -> None:
    item = {"value": to_dynamo(value)}
    assert from_dynamo(item) == {"value": _plain_via_boto3(TypeDeserializer().deserialize(item["value"]))}


def test_unstorable_values_become_text() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_STORED_DEPTH + 3):
        deep = [deep]
    stored = to_dynamo(
        {"big": 10**40, "tiny": 1e-200, "nan": math.nan, "inf": -math.inf, "lone": "a\udc80b", "": 1, 2: "x"}
    )["M"]
    assert stored["big"] == {"S": str(10**40)}
    assert stored["tiny"] == {"S": "1E-200"}
    assert stored["nan"] == {"S": "NaN"}
    assert stored["inf"] == {"S": "-Infinity"}
    assert stored["lone"] == {"S": "a?b"}
    assert stored["(empty)"] == {"N": "1"}
    assert stored["2"] == {"S": "x"}
    text = json.dumps(to_dynamo(deep))
    assert '"S": "[[' in text
    assert text.count('"L"') == MAX_STORED_DEPTH


def test_non_json_values_are_refused() -> None:
    with pytest.raises(TypeError, match="not JSON-like"):
        to_dynamo({"when": object()})


@settings(max_examples=500, deadline=None)
@given(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e120, max_value=1e120).filter(
        lambda number: number == 0 or abs(number) > 1e-120
    )
    | st.integers(min_value=-(10**38) - 5, max_value=10**38 + 5)
    | st.sampled_from([10**38 - 1, -(10**38) + 1, 1e16, 1e-5, 0.0001, -0.0, 123.0, 1e15 + 0.5])
)
def test_the_fast_paths_for_numbers_write_what_the_general_path_writes(number: float | int) -> None:
    too_many_digits = isinstance(number, int) and abs(number) >= 10**38
    expected = {"S": str(number)} if too_many_digits else _via_boto3(number)
    assert to_dynamo(number) == expected
    assert to_dynamo({"k": [number]}) == {"M": {"k": {"L": [expected]}}}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.text(max_size=8))
def test_the_fast_path_for_text_writes_what_the_general_path_writes(text: str, key: str) -> None:
    expected_key = key.encode("utf-8", "replace").decode("utf-8") or "(empty)"
    assert to_dynamo({key: text}) == {
        "M": {expected_key: {"S": text.encode("utf-8", "replace").decode("utf-8")}}
    }


def test_ordinary_values_are_untouched() -> None:
    plain = {"cost": 0.000123, "tokens": 42, "text": "héllo", "nested": [{"a": None, "b": True}]}
    assert to_dynamo(plain) == {
        "M": {
            "cost": {"N": "0.000123"},
            "tokens": {"N": "42"},
            "text": {"S": "héllo"},
            "nested": {"L": [{"M": {"a": {"NULL": True}, "b": {"BOOL": True}}}]},
        }
    }


def test_items_read_back_as_plain_values() -> None:
    item = {
        "count": {"N": "3"},
        "cost": {"N": "0.25"},
        "whole": {"N": "2.0"},
        "text": {"S": "t"},
        "tags": {"SS": ["a"]},
        "nested": {"M": {"l": {"L": [{"N": "1"}, {"NULL": True}]}}},
        "empty": {},  # a stream image's empty map on DynamoDB Local: left out
    }
    assert from_dynamo(item) == {
        "count": 3,
        "cost": 0.25,
        "whole": 2,
        "text": "t",
        "tags": ["a"],
        "nested": {"l": [1, None]},
    }
    plain = {"cost": 0.000123, "tokens": 42, "nested": [{"a": None, "b": True}], "big": 10**40}
    assert from_dynamo(to_dynamo(plain)["M"]) == {**plain, "big": str(10**40)}


def test_number_sets_binaries_and_exponents_read_back() -> None:
    item = {
        "numbers": {"NS": ["1", "-2", "1.5", "1E+2"]},
        "blob": {"B": b"\x00\x01"},
        "blobs": {"BS": [b"a"]},
        "negative": {"N": "-0.5"},
    }
    assert from_dynamo(item) == {
        "numbers": [1, -2, 1.5, 100],
        "blob": b"\x00\x01",
        "blobs": [b"a"],
        "negative": -0.5,
    }


def test_an_unknown_attribute_type_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="'X' is not supported"):
        from_dynamo({"odd": {"X": "1"}})
