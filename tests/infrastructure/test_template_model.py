"""local/stack/template_model.py reads template.yaml exactly as cfn-lint does, and what it derives from the
table and queue definitions is accepted by the AWS APIs (moto, in process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import decode_str
from moto import mock_aws

from local.stack.template_model import (
    function_config,
    load_template,
    properties,
    queue_attributes,
    redrive_target,
    table_create_kwargs,
    table_ttl_attribute,
)

from .conftest import TEMPLATE


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def test_matches_cfn_lint_decoder(template: dict[str, Any]) -> None:
    decoded, problems = decode_str(TEMPLATE.read_text())
    assert problems == []
    assert _plain(template) == _plain(decoded)


def test_short_form_tags(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "Resources:\n"
        "  R:\n"
        "    Type: X\n"
        "    Condition: C\n"
        "    Properties:\n"
        "      A: !Ref P\n"
        "      B: !GetAtt Q.Arn\n"
        "      C: !GetAtt [Q, Arn]\n"
        '      D: !Sub ["${x}", {x: !Ref AWS::Region}]\n'
        "      E: !If [C, !Condition C, !Join [',', [a, b]]]\n"
        "      F: !GetAtt Q.Endpoint.Address\n"
    )
    props = load_template(path)["Resources"]["R"]["Properties"]
    assert props == {
        "A": {"Ref": "P"},
        "B": {"Fn::GetAtt": ["Q", "Arn"]},
        "C": {"Fn::GetAtt": ["Q", "Arn"]},
        "D": {"Fn::Sub": ["${x}", {"x": {"Ref": "AWS::Region"}}]},
        "E": {"Fn::If": ["C", {"Condition": "C"}, {"Fn::Join": [",", ["a", "b"]]}]},
        "F": {"Fn::GetAtt": ["Q", "Endpoint.Address"]},
    }


def test_rejects_non_templates(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("just: a map\n")
    with pytest.raises(ValueError, match="not a CloudFormation template"):
        load_template(path)
    with pytest.raises(KeyError, match="NoSuchThing"):
        properties(load_template(TEMPLATE), "NoSuchThing")


def test_function_config_merges_globals_like_sam(template: dict[str, Any]) -> None:
    merged = function_config(template, "WebhookFunction")
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    own_env = properties(template, "WebhookFunction")["Environment"]["Variables"]
    assert merged["Environment"]["Variables"] == {**globals_env, **own_env}
    assert (
        merged["Timeout"]
        == properties(template, "WebhookFunction")["Timeout"]
        != template["Globals"]["Function"]["Timeout"]
    )
    assert merged["MemorySize"] == template["Globals"]["Function"]["MemorySize"]
    # Maps merge: the function adds LogGroup, Globals keep LogFormat.
    assert merged["LoggingConfig"]["LogFormat"] == "JSON"
    assert merged["LoggingConfig"]["LogGroup"] == {"Ref": "WebhookFunctionLogGroup"}
    # The template itself is untouched.
    assert "LogGroup" not in template["Globals"]["Function"]["LoggingConfig"]


def test_function_config_list_and_intrinsic_rules() -> None:
    template = {
        "Globals": {"Function": {"Layers": ["g"], "Environment": {"Variables": {"A": "1"}}}},
        "Resources": {
            "F": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"Layers": ["f"], "Environment": {"Fn::If": ["C", {"Variables": {}}, {}]}},
            }
        },
    }
    merged = function_config(template, "F")
    assert merged["Layers"] == ["g", "f"]
    assert merged["Environment"] == {
        "Fn::If": ["C", {"Variables": {}}, {}]
    }  # an intrinsic replaces, never merges


@mock_aws
def test_table_from_template_is_accepted(template: dict[str, Any]) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(**table_create_kwargs(template, "TasksTable", "tasks"))
    ttl = table_ttl_attribute(template, "TasksTable")
    assert ttl == "expiresAt"
    client.update_time_to_live(
        TableName="tasks", TimeToLiveSpecification={"AttributeName": ttl, "Enabled": True}
    )
    table = client.describe_table(TableName="tasks")["Table"]
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"BySource", "OpenTasks", "ByCaller"}
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"


@mock_aws
def test_queues_from_template_are_accepted(template: dict[str, Any]) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    dlq_id, max_receive = redrive_target(template, "IngestQueue") or ("", 0)
    dlq_url = sqs.create_queue(QueueName="dlq", Attributes=queue_attributes(template, dlq_id))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    with pytest.raises(KeyError, match="IngestDeadLetterQueue"):
        queue_attributes(template, "IngestQueue")
    attributes = queue_attributes(template, "IngestQueue", {dlq_id: dlq_arn})
    url = sqs.create_queue(QueueName="ingest", Attributes=attributes)["QueueUrl"]
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert got["VisibilityTimeout"] == str(properties(template, "IngestQueue")["VisibilityTimeout"])
    assert json.loads(got["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receive,
    }
