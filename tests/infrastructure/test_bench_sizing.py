"""The capacity plan and the cost model size the functions as template.yaml does."""

from __future__ import annotations

from typing import Any

from bench.capacity_plan import Measured, Plan
from bench.cost import Workload
from local.stack.template_model import function_config


def _memory(template: dict[str, Any], logical_id: str) -> float:
    return float(function_config(template, logical_id)["MemorySize"])


def test_the_models_take_the_templates_memory_sizes(template: dict[str, Any]) -> None:
    assert Measured().webhook_memory_mb == _memory(template, "WebhookFunction")
    workload = Workload()
    assert workload.submit_memory_mb == _memory(template, "SubmitFunction")
    assert workload.results_memory_mb == _memory(template, "ResultsFunction")
    assert workload.reconcile_memory_mb == _memory(template, "ReconcileFunction")


def test_the_models_take_the_templates_defaults(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert Workload().retention_days == float(parameters["TaskRetentionDays"]["Default"])
    assert Plan().submit_max_concurrency == int(parameters["SubmitMaxConcurrency"]["Default"])
    stream = function_config(template, "ResultsFunction")["Events"]["TaskChanges"]["Properties"]
    assert Workload().records_per_batch == Plan().records_per_batch == float(stream["BatchSize"])
