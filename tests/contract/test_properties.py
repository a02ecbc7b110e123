"""Property-based agreement between our request models and the schema in the shared OpenAPI file.

(a) whatever `TextInferenceTask` accepts serialises to a request the schema accepts;
(b) values drawn from the schema's own ranges are accepted by both, and sent unchanged;
(c) values outside those ranges are refused by both.
Bounds, enums and constants are read from the schema, so a change to the file changes what is drawn.
"""

from __future__ import annotations

import copy
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from runrelay.contract import AuthenticationTask, TextInferenceTask
from tests.contract.samples import full_request, minimal_request
from tests.contract.schema import (
    array_validator,
    authentication_validator,
    item_validator,
    request_item_schema,
    schema_errors,
)

PROPS = request_item_schema()["properties"]
SETTINGS = PROPS["settings"]["properties"]
GRID = [i / 100 for i in range(101)]  # the double nearest to each of 0.00, 0.01, ..., 1.00
# The ten two-decimal values whose `value / 0.01` is not integral in binary floating point, so that
# jsonschema's multipleOf check (and Runware's, if it does the same) refuses them.
FLOAT_QUIRK = {0.07, 0.14, 0.28, 0.29, 0.47, 0.56, 0.57, 0.58, 0.59, 0.94}

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _schema_accepts(settings_value: dict[str, Any]) -> bool:
    return not schema_errors(item_validator(), {**minimal_request(), "settings": settings_value})


def _model_accepts(request: dict[str, Any]) -> bool:
    try:
        TextInferenceTask.model_validate(request)
    except ValidationError:
        return False
    return True


# --- strategies: valid values, straight from the schema ------------------------------------------------


def _int_in(spec: dict[str, Any]) -> st.SearchStrategy[int]:
    return st.integers(spec["minimum"], spec["maximum"])


def _grid_in(name: str) -> st.SearchStrategy[float]:
    return st.sampled_from([v for v in GRID if _schema_accepts({name: v})])


_PCHAR = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@"
_hosts = st.from_regex(
    r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?){0,2}", fullmatch=True
)
_segments = st.lists(st.text(_PCHAR, max_size=8) | st.just("%2F"), max_size=3).map("".join)
valid_urls = st.builds(
    "{}://{}{}{}{}".format,
    st.sampled_from(["http", "https"]),
    _hosts,
    st.one_of(st.just(""), st.integers(1, 65535).map(":{}".format)),
    st.lists(_segments, max_size=3).map(lambda parts: "".join("/" + p for p in parts)),
    st.one_of(st.just(""), st.text(_PCHAR + "/?", max_size=12).map("?{}".format)),
)

valid_messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(PROPS["messages"]["items"]["properties"]["role"]["enum"]),
            "content": st.text(min_size=1, max_size=20),
        }
    ),
    min_size=PROPS["messages"]["minItems"],
    max_size=4,
)

valid_settings = st.fixed_dictionaries(
    {},
    optional={
        "systemPrompt": st.text(min_size=SETTINGS["systemPrompt"]["minLength"], max_size=30),
        "temperature": _grid_in("temperature"),
        "topP": _grid_in("topP"),
        "maxTokens": _int_in(SETTINGS["maxTokens"]),
    },
)

valid_requests = st.fixed_dictionaries(
    {
        "taskType": st.just(PROPS["taskType"]["const"]),
        "taskUUID": st.uuids().map(str),
        "model": st.just(PROPS["model"]["const"]),
        "messages": valid_messages,
    },
    optional={
        "seed": _int_in(PROPS["seed"]),
        "settings": valid_settings,
        "webhookURL": valid_urls,
        "includeCost": st.booleans(),
        "includeUsage": st.booleans(),
        "deliveryMethod": st.sampled_from([one["const"] for one in PROPS["deliveryMethod"]["oneOf"]]),
        "numberResults": _int_in(PROPS["numberResults"]),
    },
)


# --- strategies: anything at all, with the edges most likely to split model and schema -----------------

_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
_near_grid = st.builds(lambda i, noise: i / 100 + noise, st.integers(-2, 102), st.floats(-2e-9, 2e-9))
_numbers = st.one_of(
    st.sampled_from(GRID),
    _near_grid,
    st.floats(-0.1, 1.1),
    st.floats(0, 1e-8),
    st.integers(-1, 2),
    st.floats(),
)


def _ints_around(spec: dict[str, Any]) -> st.SearchStrategy[int]:
    lo, hi = spec["minimum"], spec["maximum"]
    return st.one_of(st.integers(lo - 2, lo + 2), st.integers(hi - 2, hi + 2), st.integers())


_URI_ALPHABET = _PCHAR + '/?#[]% <>"{}|\\^`\n\t\u00e9\u4e2d'
_any_urls = st.one_of(
    valid_urls,
    st.builds(
        str.__add__,
        st.sampled_from(["http://", "https://", "HTTPS://", "ftp://", "http:", "http:/", "//", ""]),
        st.text(_URI_ALPHABET, max_size=30),
    ),
    st.text(max_size=20),
)

WILD: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("taskType",): st.sampled_from(["textInference", "imageInference", "TextInference", ""]) | _json_scalars,
    ("taskUUID",): st.one_of(
        st.uuids().map(str),
        st.uuids().map(lambda u: u.hex),
        st.uuids().map(lambda u: str(u).upper()),
        st.uuids().map(lambda u: f"urn:uuid:{u}"),
        st.text(string.hexdigits + "-{}", max_size=40),
        _json_scalars,
    ),
    ("model",): st.sampled_from(["minimax:m2.7@0", "minimax:m2.7@1", "minimax:m2.7"]) | _json_scalars,
    ("messages",): st.one_of(
        valid_messages,
        st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant", "system", "tool"]) | _json_scalars},
                optional={"content": st.text(max_size=5) | _json_scalars, "name": st.text(max_size=3)},
            ),
            max_size=3,
        ),
        _json_scalars,
    ),
    ("seed",): _ints_around(PROPS["seed"]) | _json_scalars,
    ("numberResults",): _ints_around(PROPS["numberResults"]) | _json_scalars,
    ("settings",): st.one_of(
        valid_settings,
        st.dictionaries(st.sampled_from([*SETTINGS, "topK"]), _numbers | _json_scalars, max_size=3),
        _json_scalars,
    ),
    ("settings", "temperature"): _numbers | _json_scalars,
    ("settings", "topP"): _numbers | _json_scalars,
    ("settings", "maxTokens"): _ints_around(SETTINGS["maxTokens"]) | _json_scalars,
    ("settings", "systemPrompt"): st.text(max_size=5) | _json_scalars,
    ("webhookURL",): _any_urls | _json_scalars,
    ("includeCost",): _json_scalars,
    ("includeUsage",): _json_scalars,
    ("deliveryMethod",): st.sampled_from(["sync", "async", "stream", "Sync", "webhook"]) | _json_scalars,
    ("extraKey",): _json_scalars,
}


@st.composite
def arbitrary_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request with 0 to 3 spots replaced by anything (including valid-but-awkward values)."""
    request = copy.deepcopy(draw(valid_requests))
    for path in draw(st.lists(st.sampled_from(sorted(WILD)), max_size=3, unique=True)):
        parent = request
        if len(path) == 2:
            if not isinstance(request.get(path[0]), dict):
                request[path[0]] = {}
            parent = request[path[0]]
        parent[path[-1]] = draw(WILD[path])
    return request


# --- (a) model accepts => schema accepts -----------------------------------------------------------------


@FAST
@given(arbitrary_requests())
def test_whatever_the_model_accepts_the_schema_accepts(request: dict[str, Any]) -> None:
    try:
        task = TextInferenceTask.model_validate(request)
    except ValidationError:
        event("refused by the model")
        return
    event("accepted by the model")
    sent = task.to_request()
    assert schema_errors(array_validator(), [sent]) == []


@FAST
@given(st.one_of(_any_urls, st.text(_URI_ALPHABET, max_size=30).map("https://h/".__add__)))
def test_whatever_webhook_url_the_model_accepts_the_schema_accepts(url: str) -> None:
    request = {**minimal_request(), "webhookURL": url}
    if _model_accepts(request):
        assert schema_errors(item_validator(), request) == []


@FAST
@given(_numbers, st.sampled_from(["temperature", "topP"]))
def test_accepted_sampling_values_are_sent_on_the_grid_without_artefacts(value: float, name: str) -> None:
    request = {**minimal_request(), "settings": {name: value}}
    if not _model_accepts(request):
        return
    sent = TextInferenceTask.model_validate(request).to_request()["settings"][name]
    assert sent in GRID
    assert len(repr(float(sent))) <= 4  # "0.7", "0.07", "1.0": never 0.7000000000000001
    assert abs(sent - value) <= 1e-9
    assert _schema_accepts({name: sent})


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(st.text(max_size=10), st.none(), st.integers()),
    st.one_of(st.none(), st.uuids().map(str), st.uuids().map(lambda u: u.hex), st.text(max_size=10)),
)
def test_whatever_authentication_task_the_model_accepts_the_schema_accepts(
    key: object, session: object
) -> None:
    raw = {"taskType": "authentication", "apiKey": key, "connectionSessionUUID": session}
    try:
        sent = AuthenticationTask.model_validate(raw).to_request()
    except ValidationError:
        return
    assert schema_errors(authentication_validator(), sent) == []


# --- (b) valid values from the schema's ranges are accepted by both -------------------------------------


@FAST
@given(valid_requests)
def test_schema_valid_requests_are_accepted_and_sent_unchanged(request: dict[str, Any]) -> None:
    assert schema_errors(item_validator(), request) == []
    sent = TextInferenceTask.model_validate(request).to_request()
    if request.get("settings") == {}:  # an empty settings object is left out: it says nothing either way
        request = {key: value for key, value in request.items() if key != "settings"}
    assert sent == request
    assert schema_errors(item_validator(), sent) == []


@pytest.mark.parametrize("name", ["temperature", "topP"])
def test_model_and_schema_agree_on_every_grid_value(name: str) -> None:
    disagreements = []
    refused = set()
    for value in GRID:
        schema_ok = _schema_accepts({name: value})
        model_ok = _model_accepts({**minimal_request(), "settings": {name: value}})
        if schema_ok != model_ok:
            disagreements.append((value, schema_ok, model_ok))
        if not schema_ok:
            refused.add(value)
    assert disagreements == []
    # What both refuse: the float quirk, and 0 for temperature (exclusiveMinimum).
    assert refused == (FLOAT_QUIRK | {0.0} if name == "temperature" else FLOAT_QUIRK)


@pytest.mark.parametrize("value", sorted(FLOAT_QUIRK))
def test_grid_values_the_float_check_refuses_get_a_helpful_message(value: float) -> None:
    with pytest.raises(ValidationError, match=r"use \d\.\d\d or \d\.\d\d") as refused:
        TextInferenceTask.model_validate({**minimal_request(), "settings": {"topP": value}})
    assert "settings.topP" in str(refused.value)
    for neighbour in (round(value - 0.01, 2), round(value + 0.01, 2)):
        if neighbour not in FLOAT_QUIRK:
            assert f"{neighbour:.2f}" in str(refused.value)


# --- (c) values outside the schema's ranges are refused by both ----------------------------------------

_INT_FIELDS = {
    ("seed",): PROPS["seed"],
    ("numberResults",): PROPS["numberResults"],
    ("settings", "maxTokens"): SETTINGS["maxTokens"],
}


def _with(path: tuple[str, ...], value: object) -> dict[str, Any]:
    request = full_request()
    (request if len(path) == 1 else request[path[0]])[path[-1]] = value
    return request


@pytest.mark.parametrize("path", list(_INT_FIELDS), ids=".".join)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_integers_outside_the_schema_range_are_refused_by_both(
    path: tuple[str, ...], data: st.DataObject
) -> None:
    spec = _INT_FIELDS[path]
    value = data.draw(
        st.one_of(st.integers(max_value=spec["minimum"] - 1), st.integers(min_value=spec["maximum"] + 1))
    )
    request = _with(path, value)
    assert schema_errors(item_validator(), request)
    assert not _model_accepts(request)


@pytest.mark.parametrize("name", ["temperature", "topP"])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_numbers_outside_the_schema_range_or_off_the_grid_are_refused_by_both(
    name: str, data: st.DataObject
) -> None:
    spec = SETTINGS[name]
    value = data.draw(
        st.one_of(
            # JSON has no NaN or infinity
            st.floats(max_value=spec["minimum"] - 0.001, allow_nan=False, allow_infinity=False),
            st.floats(min_value=spec["maximum"] + 0.001, allow_nan=False, allow_infinity=False),
            st.builds(lambda i, off: i / 100 + off, st.integers(0, 99), st.floats(0.0001, 0.0099)),
        )
    )
    request = {**minimal_request(), "settings": {name: value}}
    assert not _schema_accepts({name: value})
    assert not _model_accepts(request)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=10).filter(lambda s: s not in {"user", "assistant"}))
def test_roles_outside_the_enum_are_refused_by_both(role: str) -> None:
    request = {**minimal_request(), "messages": [{"role": role, "content": "x"}]}
    assert schema_errors(item_validator(), request)
    assert not _model_accepts(request)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=12).filter(lambda s: s.isidentifier() and s not in PROPS))
def test_unknown_top_level_keys_are_refused_by_both(key: str) -> None:
    request = {**minimal_request(), key: 1}
    assert schema_errors(item_validator(), request)
    assert not _model_accepts(request)
