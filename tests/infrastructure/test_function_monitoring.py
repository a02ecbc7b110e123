"""Every function is watched the same way: the same Lambda alarms and a line in every per-function widget.

Derived from the template, so a function added (or an alarm added for one function) without the rest
fails here. Metrics that exist only for some event sources (IteratorAge: streams) are required of
exactly the functions with such a source.
"""

from __future__ import annotations

import json
import re
from typing import Any

from local.stack.template_model import function_config, properties

# Lambda metrics that only functions with these event source types have.
SOURCE_SPECIFIC_METRICS = {"IteratorAge": {"DynamoDB", "Kinesis"}}
# Alarm properties that must agree across the functions for one metric.
ALARM_SETTINGS = ("Statistic", "Period", "ComparisonOperator", "TreatMissingData", "AlarmActions")


def _functions(template: dict[str, Any]) -> list[str]:
    return [k for k, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]


def _event_types(template: dict[str, Any], function: str) -> set[str]:
    events = function_config(template, function).get("Events") or {}
    return {str(event["Type"]) for event in events.values()}


def _expected_metrics(template: dict[str, Any], function: str, common: set[str]) -> set[str]:
    types = _event_types(template, function)
    specific = {metric for metric, sources in SOURCE_SPECIFIC_METRICS.items() if types & sources}
    return common | specific


def _lambda_alarms(template: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """function -> metric name -> the alarm's properties, for every alarm on one function's metric."""
    alarms: dict[str, dict[str, dict[str, Any]]] = {}
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] != "AWS::CloudWatch::Alarm" or props.get("Namespace") != "AWS/Lambda":
            continue
        (dimension,) = props["Dimensions"]
        assert dimension["Name"] == "FunctionName", props
        function = dimension["Value"]["Ref"]
        assert props["MetricName"] not in alarms.get(function, {}), f"two {props['MetricName']} alarms"
        alarms.setdefault(function, {})[props["MetricName"]] = props
    return alarms


def test_every_function_has_the_same_alarms(template: dict[str, Any]) -> None:
    alarms = _lambda_alarms(template)
    functions = _functions(template)
    assert set(alarms) <= set(functions), "an alarm on something that is not a function"
    common = {m for f in functions for m in alarms.get(f, {}) if m not in SOURCE_SPECIFIC_METRICS}
    assert {"Errors", "Throttles"} <= common
    for function in functions:
        assert set(alarms.get(function, {})) == _expected_metrics(template, function, common), function
    for metric in {m for f in alarms.values() for m in f}:
        watched = [alarms[f][metric] for f in functions if metric in alarms.get(f, {})]
        for setting in ALARM_SETTINGS:
            assert len({json.dumps(a.get(setting), sort_keys=True) for a in watched}) == 1, (metric, setting)


def _metric_rows(rows: list[list[Any]]) -> list[list[str]]:
    """CloudWatch's shorthand expanded: "." repeats the previous row's item, "..." the whole row."""
    expanded: list[list[str]] = []
    previous: list[str] = []
    for row in rows:
        items = [str(item) for item in row if not isinstance(item, dict)]
        if items == ["..."]:
            items = list(previous)
        items = [previous[i] if item == "." else item for i, item in enumerate(items)]
        expanded.append(items)
        previous = items
    return expanded


def _lambda_lines(widget: dict[str, Any]) -> dict[str, set[str]]:
    """metric name -> the functions a metric widget plots it for."""
    lines: dict[str, set[str]] = {}
    for namespace, metric, *dimensions in _metric_rows(widget["properties"].get("metrics", [])):
        if namespace != "AWS/Lambda":
            continue
        named = dict(zip(dimensions[::2], dimensions[1::2], strict=True))
        function = re.fullmatch(r"\$\{(\w+)\}", named["FunctionName"])
        assert function, named
        lines.setdefault(metric, set()).add(function.group(1))
    return lines


def _widgets(template: dict[str, Any]) -> list[dict[str, Any]]:
    body = properties(template, "Dashboard")["DashboardBody"]["Fn::Sub"]
    return list(json.loads(body)["widgets"])  # ${...} placeholders all sit inside JSON strings


def test_every_per_function_widget_lists_every_function(template: dict[str, Any]) -> None:
    functions = set(_functions(template))
    per_function = 0
    for widget in _widgets(template):
        title = widget["properties"].get("title")
        for metric, plotted in _lambda_lines(widget).items():
            if metric in SOURCE_SPECIFIC_METRICS:
                expected = {
                    f for f in functions if _event_types(template, f) & SOURCE_SPECIFIC_METRICS[metric]
                }
            else:
                expected = functions
                per_function += 1
            assert plotted == expected, f"widget {title!r}, {metric}: missing {sorted(expected - plotted)}"
    assert per_function >= 4  # invocations, errors, throttles, duration


def test_the_row_shorthand_is_expanded() -> None:
    rows = [
        ["AWS/Lambda", "Invocations", "FunctionName", "${A}"],
        [".", "Errors", ".", "."],
        ["...", {"stat": "p99"}],
    ]
    assert _metric_rows(rows) == [
        ["AWS/Lambda", "Invocations", "FunctionName", "${A}"],
        ["AWS/Lambda", "Errors", "FunctionName", "${A}"],
        ["AWS/Lambda", "Errors", "FunctionName", "${A}"],
    ]
