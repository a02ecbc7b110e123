"""Exactly-once under faults: `make chaos` in small (500 tasks) on the session's servers.

Runware-side faults (the emulator) and AWS-side faults in the functions' own calls (throttling, 5xx,
resets, lost responses, transaction conflicts, refused PutEvents entries, broken S3 bodies, and a
DynamoDB outage). Every figure `local.tools.chaos` prints is checked: nothing lost, nothing stored twice,
nothing run twice at Runware, every task COMPLETED or FAILED exactly as the emulator decided, every
final task recorded in its tally, with its TaskCompleted event, the file with its results file and
JobCompleted, both DLQs empty.
"""

from __future__ import annotations

from dataclasses import replace

from local.tools.chaos import CHAOS_AWS_FAULTS, ChaosSettings, run_chaos


def test_500_tasks_under_injected_faults_end_exactly_as_the_emulator_decided(
    dynamodb_local: str, moto_server: str
) -> None:
    # Small messages mean ~170 submit POSTs, so the 5% throttling is all but certain to strike.
    settings = ChaosSettings(
        tasks=500,
        lines_per_file=125,
        max_specs_per_message=2,
        timeout_seconds=300,
        outage_start_seconds=10,
        outage_seconds=15,  # make chaos: 60 s; the retry budget is scaled to the outage either way
        # Two files make few transactions (one per file per stream batch): conflicts at half of them, so
        # that they surely strike (each is retried, and a batch they exhaust is redelivered).
        aws_faults=replace(CHAOS_AWS_FAULTS, transaction_conflict=0.5),
    )
    report = run_chaos(settings, dynamodb_url=dynamodb_local, moto_url=moto_server)

    assert report.ok, report.render()
    assert (report.lost, report.duplicated, report.rerun, report.wrong_outcome) == (0, 0, 0, 0)
    assert report.completed + report.failed == 500
    assert report.failed == report.expected_failed > 0
    assert report.dlq_depth == report.results_dlq_depth == 0
    assert report.files == 2
    assert (report.missing_marks, report.missing_task_events, report.mismatched_event_keys) == (0, 0, 0)
    assert (report.missing_results_files, report.missing_job_events) == (0, 0)
    # The faults really happened (the rates make each of these all but certain at 500 tasks).
    for kind in ("webhook_duplicate", "webhook_late", "webhook_dropped", "task_error"):
        assert report.faults.get(kind, 0) > 0, (kind, report.faults)
    assert report.faults.get("http_429", 0) + report.faults.get("http_503", 0) > 0, report.faults
    kinds = {key.split()[1] for key in report.aws_faults}
    assert {"outage", "throttle", "server_error", "reset", "lost_response", "transaction_conflict"} <= kinds
    assert "put_events_refused" in kinds, report.aws_faults
