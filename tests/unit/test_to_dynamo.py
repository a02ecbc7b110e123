"""`to_dynamo` writes JSON-like data exactly as boto3 would write its JSON form, and keeps as text
what DynamoDB cannot hold."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from runrelay.task_store import MAX_STORED_DEPTH, to_dynamo

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
