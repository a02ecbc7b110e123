"""DynamoDB's typed wire form of JSON-like values, both ways."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

# DynamoDB nests documents at most 32 levels; a stored value sits a few levels down (results.<id>.…).
MAX_STORED_DEPTH = 24
_INFINITY = float("inf")
_INT_LIMIT = 10**38  # integers below it in magnitude fit DynamoDB's 38 digits as they are


def to_dynamo(value: Any) -> dict[str, Any]:
    """DynamoDB's wire form of JSON-like data, in one pass (floats are written exactly as JSON writes
    them). What DynamoDB cannot hold is kept as text instead of failing the write: numbers beyond its
    range or 38 digits, NaN/Infinity, lone surrogates and nesting deeper than it allows. Such values only
    come from unknown fields or hostile bodies, and an unstorable one must not turn into a 5xx."""
    return _attribute(value, 0)


def _attribute(value: Any, depth: int) -> dict[str, Any]:
    # Exact-type fast paths for what results are made of (ASCII text, small integers): the generic
    # checks below are a measurable share of a warm webhook (bench/README.md, warm_webhook).
    kind = type(value)
    if kind is str and value.isascii():
        return {"S": value}
    if kind is int and -_INT_LIMIT < value < _INT_LIMIT:
        return {"N": str(value)}
    if kind is float:
        text = repr(value)  # what json.dumps writes; without an exponent (1e-4 ≤ |x| < 1e16) it is
        if "e" not in text and "n" not in text:  # also what Decimal prints, and nan/inf contain an n
            return {"N": text}
    if kind is dict and depth < MAX_STORED_DEPTH:
        return {"M": {_key(key): _attribute(item, depth + 1) for key, item in value.items()}}
    if isinstance(value, str):
        return {"S": value.encode("utf-8", "replace").decode("utf-8")}
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return _number(Decimal(value), str(value))
    if isinstance(value, float):
        if value != value or value in (_INFINITY, -_INFINITY):
            return {"S": json.dumps(value)}
        number = Decimal(repr(value))  # repr is what json.dumps writes
        return _number(number, str(number))
    if not isinstance(value, dict | list | tuple):
        raise TypeError(f"{type(value).__name__} is not JSON-like")
    if depth >= MAX_STORED_DEPTH:
        return {"S": json.dumps(value, ensure_ascii=True)}
    if isinstance(value, dict):
        return {"M": {_key(key): _attribute(item, depth + 1) for key, item in value.items()}}
    return {"L": [_attribute(item, depth + 1) for item in value]}


def _key(key: Any) -> str:
    if type(key) is str and key and key.isascii():
        return key
    text = key if isinstance(key, str) else json.dumps(key)  # as JSON names a non-string key
    return text.encode("utf-8", "replace").decode("utf-8") or "(empty)"


def _number(number: Decimal, text: str) -> dict[str, Any]:
    return {"N": text} if _fits_dynamo_number(number) else {"S": text}


def _fits_dynamo_number(number: Decimal) -> bool:
    if not number.is_finite():
        return False
    if number.is_zero():
        return True
    # Digits as written (boto3 refuses to round away even trailing zeros).
    return len(number.as_tuple().digits) <= 38 and -130 <= number.adjusted() <= 125


def from_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values of a typed item: numbers as int or float, sets as lists. An empty attribute (a stream
    image's `{}` for an empty map) is left out."""
    return {key: _plain(value) for key, value in item.items() if value}


def _plain(typed: Mapping[str, Any]) -> Any:
    # Written out rather than boto3's TypeDeserializer, which would import boto3 into every handler for
    # this alone (aws_clients), and which takes a second pass to turn its Decimals into numbers.
    ((kind, value),) = typed.items()
    if kind == "S" or kind == "BOOL":
        return value
    if kind == "N":
        return _number_value(value)
    if kind == "M":
        return {key: _plain(item) for key, item in value.items()}
    if kind == "L":
        return [_plain(item) for item in value]
    if kind == "NULL":
        return None
    if kind == "SS" or kind == "BS":
        return list(value)
    if kind == "NS":
        return [_number_value(item) for item in value]
    if kind == "B":
        return value
    raise TypeError(f"DynamoDB type {kind!r} is not supported")


def _number_value(text: str) -> int | float:
    if text.isdecimal() or (text[:1] == "-" and text[1:].isdecimal()):
        return int(text)
    number = Decimal(text)
    return int(number) if number == number.to_integral_value() else float(number)
