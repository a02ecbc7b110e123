"""template.yaml as plain data, so the local stack and the tests build from the deployed definition.

CloudFormation's short-form tags become the long form (`!Ref X` -> `{"Ref": "X"}`, `!Sub s` ->
`{"Fn::Sub": s}`, `!GetAtt A.B` -> `{"Fn::GetAtt": ["A", "B"]}`), which is also what cfn-lint's
decoder produces. Helpers below turn the table and queue definitions into boto3 arguments, keeping
only what DynamoDB Local / moto understand.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that knows CloudFormation's `!Tag` intrinsics."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: str | Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template into plain dicts and lists."""
    with open(path, encoding="utf-8") as f:
        data = yaml.load(f, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(data, dict) or "Resources" not in data:
        raise ValueError(f"{path} is not a CloudFormation template")
    return data


def properties(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """The Properties of one resource (KeyError names the missing logical id)."""
    try:
        resource = template["Resources"][logical_id]
    except KeyError:
        raise KeyError(f"template has no resource {logical_id!r}") from None
    return dict(resource.get("Properties", {}))


def function_config(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """A Serverless::Function's properties with Globals.Function merged in, as SAM does it:
    maps merge (the function wins), scalars are replaced, lists are concatenated (globals first)."""
    merged = copy.deepcopy(template.get("Globals", {}).get("Function", {}))
    for key, value in properties(template, logical_id).items():
        merged[key] = _merge_global(merged.get(key), value)
    return merged


def _merge_global(global_value: Any, local_value: Any) -> Any:
    if isinstance(global_value, dict) and isinstance(local_value, dict) and not _is_intrinsic(local_value):
        out = dict(global_value)
        for k, v in local_value.items():
            out[k] = _merge_global(out.get(k), v)
        return out
    if isinstance(global_value, list) and isinstance(local_value, list):
        return global_value + local_value
    return copy.deepcopy(local_value)


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    if len(value) != 1:
        return False
    key = str(next(iter(value)))
    return key in ("Ref", "Condition") or key.startswith("Fn::")


def table_create_kwargs(template: Mapping[str, Any], logical_id: str, table_name: str) -> dict[str, Any]:
    """boto3 `create_table` arguments for an AWS::DynamoDB::Table (keys, indexes, billing, stream).

    Point-in-time recovery, SSE and deletion protection are deployment concerns DynamoDB Local ignores;
    TTL is a separate call (see `table_ttl_attribute`)."""
    props = properties(template, logical_id)
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": copy.deepcopy(props["AttributeDefinitions"]),
        "KeySchema": copy.deepcopy(props["KeySchema"]),
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = copy.deepcopy(props["GlobalSecondaryIndexes"])
    stream = props.get("StreamSpecification")
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    return kwargs


def table_ttl_attribute(template: Mapping[str, Any], logical_id: str) -> str | None:
    spec = properties(template, logical_id).get("TimeToLiveSpecification") or {}
    return spec.get("AttributeName") if spec.get("Enabled") else None


_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
)


def queue_attributes(
    template: Mapping[str, Any], logical_id: str, arns: Mapping[str, str] | None = None
) -> dict[str, str]:
    """boto3 `create_queue` Attributes for an AWS::SQS::Queue.

    A redrive target written as `!GetAtt Dlq.Arn` is resolved through `arns` (logical id -> ARN), so
    create the dead-letter queue first (see `redrive_target`)."""
    props = properties(template, logical_id)
    attributes: dict[str, str] = {key: str(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
    target = redrive_target(template, logical_id)
    if target is not None:
        dlq_id, max_receive_count = target
        if not arns or dlq_id not in arns:
            raise KeyError(f"{logical_id} redrives to {dlq_id}: pass its ARN in arns")
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": arns[dlq_id], "maxReceiveCount": str(max_receive_count)}
        )
    return attributes


def redrive_target(template: Mapping[str, Any], logical_id: str) -> tuple[str, int] | None:
    """(dead-letter queue logical id, maxReceiveCount) of a queue, or None without a redrive policy."""
    policy = properties(template, logical_id).get("RedrivePolicy")
    if not policy:
        return None
    target = policy["deadLetterTargetArn"]
    if not (isinstance(target, dict) and "Fn::GetAtt" in target):
        raise ValueError(f"{logical_id}: deadLetterTargetArn must be !GetAtt <Queue>.Arn, got {target!r}")
    return target["Fn::GetAtt"][0], int(policy["maxReceiveCount"])
