"""Exactly-once under faults: `make chaos` in small (500 tasks) on the session's servers.

Every figure `local.chaos` prints is checked: nothing lost, nothing stored twice, nothing run twice at
Runware, every task COMPLETED or FAILED exactly as the emulator decided, the DLQ empty.
"""

from __future__ import annotations

from local.chaos import ChaosSettings, run_chaos


def test_500_tasks_under_injected_faults_end_exactly_as_the_emulator_decided(
    dynamodb_local: str, moto_server: str
) -> None:
    # Small messages mean ~170 submit POSTs, so the 5% throttling is all but certain to strike.
    settings = ChaosSettings(tasks=500, lines_per_file=125, max_specs_per_message=2, timeout_seconds=240)
    report = run_chaos(settings, dynamodb_url=dynamodb_local, moto_url=moto_server)

    assert report.ok, report.render()
    assert (report.lost, report.duplicated, report.rerun, report.wrong_outcome) == (0, 0, 0, 0)
    assert report.completed + report.failed == 500
    assert report.failed == report.expected_failed > 0
    assert report.dlq_depth == 0
    # The faults really happened (the rates make each of these all but certain at 500 tasks).
    for kind in ("webhook_duplicate", "webhook_late", "webhook_reordered", "webhook_dropped", "task_error"):
        assert report.faults.get(kind, 0) > 0, (kind, report.faults)
    assert report.faults.get("http_429", 0) + report.faults.get("http_503", 0) > 0, report.faults
