"""CloudFormation intrinsics as the local stack resolves them."""

from __future__ import annotations

from typing import Any

import pytest

from local.stack.intrinsics import (
    IntrinsicResolver,
    PhysicalResource,
    TemplateError,
    parameter_values,
    pseudo_parameters,
)

TEMPLATE: dict[str, Any] = {
    "Parameters": {
        "Stage": {"Type": "String", "Default": "dev", "AllowedValues": ["dev", "prod"]},
        "Url": {"Type": "String", "Default": "https://x", "AllowedPattern": "^https?://.+"},
        "Days": {"Type": "Number", "Default": 30},
    },
    "Conditions": {
        "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
        "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
    },
    "Mappings": {"Levels": {"dev": {"Log": "DEBUG"}, "prod": {"Log": "WARN"}}},
    "Resources": {},
}
RESOURCES = {
    "Queue": PhysicalResource(
        ref="http://q/url", attributes={"Arn": "arn:aws:sqs:us-east-1:1:q", "QueueName": "q"}
    ),
    "Api": PhysicalResource(ref="api123"),
}


def resolver(**overrides: str) -> IntrinsicResolver:
    return IntrinsicResolver(
        TEMPLATE,
        parameters=parameter_values(TEMPLATE, overrides),
        resources=RESOURCES,
        pseudo=pseudo_parameters("stk", "eu-west-1"),
        api_base_urls={"Api": "http://127.0.0.1:5555/"},
    )


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"Ref": "Days"}, "30"),
        ({"Ref": "Queue"}, "http://q/url"),
        ({"Ref": "AWS::StackName"}, "stk"),
        ({"Fn::GetAtt": ["Queue", "Arn"]}, "arn:aws:sqs:us-east-1:1:q"),
        ({"Fn::GetAtt": "Queue.QueueName"}, "q"),
        ({"Fn::Sub": "${AWS::Region}-${Queue.QueueName}-${Stage}-${!Literal}"}, "eu-west-1-q-dev-${Literal}"),
        ({"Fn::Sub": ["${A}/${Queue}", {"A": {"Ref": "Stage"}}]}, "dev/http://q/url"),
        (
            {"Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/hook"},
            "http://127.0.0.1:5555/hook",
        ),
        ({"Fn::Join": ["-", ["a", {"Ref": "Stage"}]]}, "a-dev"),
        ({"Fn::Select": [1, {"Fn::Split": ["/", "a/b/c"]}]}, "b"),
        ({"Fn::If": ["IsProd", "big", "small"]}, "small"),
        ({"Fn::FindInMap": ["Levels", {"Ref": "Stage"}, "Log"]}, "DEBUG"),
    ],
)
def test_expressions_resolve(expression: Any, expected: str) -> None:
    assert resolver().resolve(expression) == expected


def test_conditions_follow_parameter_overrides() -> None:
    assert resolver(Stage="prod").resolve({"Fn::If": ["IsProd", 1, 2]}) == 1
    assert resolver(Stage="prod").condition("NotProd") is False


def test_no_value_removes_the_key_or_item() -> None:
    value = {"Keep": 1, "Drop": {"Fn::If": ["IsProd", 2, {"Ref": "AWS::NoValue"}]}}
    assert resolver().resolve(value) == {"Keep": 1}
    assert resolver().resolve(["a", {"Ref": "AWS::NoValue"}]) == ["a"]


@pytest.mark.parametrize(
    "overrides",
    [{"Stage": "qa"}, {"Url": "ftp://nope"}, {"Unknown": "x"}],
)
def test_bad_parameter_overrides_are_refused(overrides: dict[str, str]) -> None:
    with pytest.raises(TemplateError):
        parameter_values(TEMPLATE, overrides)


@pytest.mark.parametrize(
    "expression",
    [
        {"Ref": "Nowhere"},
        {"Fn::GetAtt": ["Queue", "Nope"]},
        {"Fn::ImportValue": "x"},
        {"Fn::If": ["Missing", 1, 2]},
    ],
)
def test_unresolvable_expressions_fail_loudly(expression: Any) -> None:
    with pytest.raises(TemplateError):
        resolver().resolve(expression)
