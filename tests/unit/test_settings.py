"""Runtime settings from the environment: defaults, required names, bounds with clear errors."""

from __future__ import annotations

import pytest

from runrelay.settings import DEFAULT_RUNWARE_API_URL, RuntimeSettings


def test_defaults_apply_when_only_the_table_is_set() -> None:
    loaded = RuntimeSettings.from_environ({"TABLE_NAME": "tasks"})
    assert loaded.table_name == "tasks"
    assert loaded.runware_api_url == DEFAULT_RUNWARE_API_URL
    assert loaded.max_tasks_per_request == 100
    assert loaded.webhook_secret_id is None


def test_values_are_read_and_converted() -> None:
    loaded = RuntimeSettings.from_environ(
        {
            "TABLE_NAME": "t",
            "MAX_TASKS_PER_REQUEST": "25",
            "RUNWARE_API_URL": "http://127.0.0.1:1/v1",
            "X": "y",
        }
    )
    assert loaded.max_tasks_per_request == 25
    assert (loaded.daily_budget_usd, loaded.estimated_cost_per_result_usd) == (0.0, 0.001)
    assert loaded.runware_api_url == "http://127.0.0.1:1/v1"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "TABLE_NAME must be set"),
        (
            {"TABLE_NAME": "t", "MAX_TASKS_PER_REQUEST": "many"},
            "MAX_TASKS_PER_REQUEST must be a whole number",
        ),
        (
            {"TABLE_NAME": "t", "MAX_TASKS_PER_REQUEST": "0"},
            "MAX_TASKS_PER_REQUEST must be between 1 and 1000",
        ),
        ({"TABLE_NAME": "t", "MAX_WEBHOOK_BODY_BYTES": "10"}, "MAX_WEBHOOK_BODY_BYTES must be between 1024"),
        ({"TABLE_NAME": "t", "DAILY_BUDGET_USD": "lots"}, "DAILY_BUDGET_USD must be a number of dollars"),
        ({"TABLE_NAME": "t", "DAILY_BUDGET_USD": "-1"}, "DAILY_BUDGET_USD must be between 0"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RuntimeSettings.from_environ(environ)


def test_every_field_has_its_environment_name() -> None:
    assert "TABLE_NAME" in RuntimeSettings.environment_names()
    assert len(RuntimeSettings.environment_names()) == 18


def test_a_reconciler_run_is_sized_from_the_environment() -> None:
    base = {"TABLE_NAME": "t"}
    assert RuntimeSettings.from_environ(base).reconcile_max_tasks_per_run == 20_000
    assert (
        RuntimeSettings.from_environ(
            {**base, "RECONCILE_MAX_TASKS_PER_RUN": "60000"}
        ).reconcile_max_tasks_per_run
        == 60_000
    )
    with pytest.raises(ValueError, match="RECONCILE_MAX_TASKS_PER_RUN must be between 1 and 1000000"):
        RuntimeSettings.from_environ({**base, "RECONCILE_MAX_TASKS_PER_RUN": "0"})
