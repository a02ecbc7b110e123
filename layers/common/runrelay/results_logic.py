"""Results: the tasks table's stream → job counting, results files and EventBridge events.

Runs off the webhook's hot path (a DynamoDB Streams consumer). Each trigger is a transition that
happens in exactly one stream record, so duplicate webhooks and reconcile/webhook races (which never
make a second transition) produce nothing twice:
- a task item whose status becomes final (INSERT as REJECTED or CANCELLED, or a MODIFY from an open one):
  publish `TaskCompleted`, then record it (`JobRepository.record_finals`: counted in its job, budgets
  settled; conditional, so a redelivered record is skipped), a whole batch's finals at once;
- a JOB item that becomes complete (`finals` reaches `expected`): write the results file, then
  publish `JobCompleted`; markers on the JOB item make a retried record skip what is done.

Records are handled in order; at the first failure the report names its sequence number, so Lambda
(ReportBatchItemFailures) retries from there and nothing before it runs again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .domain.budgets import Reservation, Settlement
from .domain.events import Event, job_completed, task_completed
from .domain.jobs import FinalLine, JobBecameComplete, JobProgress, has_job
from .domain.tasks import TaskBecameFinal, TaskRecord, TaskStatus, summed_cost, summed_usage
from .ports import EventPublisher, JobRepository
from .results_file import ResultsWriter, TasksNotVisibleYet, WrittenResults

log = logging.getLogger(__name__)

_INDEX_WAIT_ATTEMPTS = 6
_INDEX_WAIT_SECONDS = 0.5


@dataclass
class StreamReport:
    changes: int = 0
    tasks_final: int = 0
    tasks_counted: int = 0
    task_events: int = 0
    jobs_completed: list[str] = field(default_factory=list)
    # Seconds from submit (or creation, for tasks never submitted) to completion, per COMPLETED task.
    latencies: list[float] = field(default_factory=list)
    # Summed over the results of the tasks made final here (counted here rather than per webhook, which
    # keeps three metrics off the webhook's latency and counts polled results too).
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    failed_sequence_number: str | None = None


@dataclass(frozen=True)
class _FinalTask:
    sequence_number: str
    task: TaskRecord
    line: FinalLine


class ResultsService:
    def __init__(self, jobs: JobRepository, writer: ResultsWriter, publisher: EventPublisher) -> None:
        self.jobs = jobs
        self.writer = writer
        self.publisher = publisher

    def process(self, changes: Sequence[TaskBecameFinal | JobBecameComplete]) -> StreamReport:
        """Handle a batch's changes in order (`adapters.dynamodb.stream.table_changes`)."""
        report = StreamReport()
        pending: list[_FinalTask] = []  # events not yet sent, finals not yet recorded
        current = ""
        try:
            for change in changes:
                current = change.sequence_number
                report.changes += 1
                if isinstance(change, JobBecameComplete):
                    self._flush(pending, report)
                    self.complete_job(change.job.source_id)
                    report.jobs_completed.append(change.job.source_id)
                    continue
                pending.append(_final_task(change))
            self._flush(pending, report)
        except Exception:
            # Retry from the earliest change whose work is not done: an unsent event's, or this one.
            report.failed_sequence_number = pending[0].sequence_number if pending else current
            log.exception("stream record %s failed; retrying from it", report.failed_sequence_number)
        return report

    def _flush(self, pending: list[_FinalTask], report: StreamReport) -> None:
        """Publish, then record: a crash in between repeats an event rather than losing it. Finals
        recorded before (a redelivered stream record) are skipped."""
        if not pending:
            return
        fresh_lines = set(self.jobs.unrecorded([final.line for final in pending]))
        fresh = [final for final in pending if final.line in fresh_lines]
        events = [task_completed(final.task) for final in fresh]
        for final, event in zip(fresh, events, strict=True):
            _account(final.task, event, report)
        self.publisher.publish(events)
        report.task_events += len(fresh)
        recorded = self.jobs.record_finals([final.line for final in fresh])
        report.tasks_counted += sum(has_job(line.source_id) for line in recorded)
        pending.clear()

    def complete_job(self, source_id: str) -> None:
        """Write the results file and announce the job, skipping whichever a previous try finished."""
        job = self.jobs.get(source_id)
        if job is None or not job.complete or job.expected is None or not job.bucket or not job.key:
            raise RuntimeError(f"job {source_id} is not complete: {job}")
        if job.results_location is None:
            written = self._write_when_indexed(job)
            self.jobs.mark_results_written(source_id, written.uri, written.counts)
            job = self.jobs.get(source_id) or job
        if not job.announced:
            self.publisher.publish([job_completed(job)])
            self.jobs.mark_announced(source_id)

    def _write_when_indexed(self, job: JobProgress) -> WrittenResults:
        assert job.expected is not None
        assert job.bucket
        assert job.key
        for attempt in range(_INDEX_WAIT_ATTEMPTS):
            try:
                return self.writer.write(job.source_id, job.expected, job.bucket, job.key)
            except TasksNotVisibleYet:
                if attempt + 1 == _INDEX_WAIT_ATTEMPTS:
                    raise
                time.sleep(_INDEX_WAIT_SECONDS)
        raise AssertionError("unreachable")


def _final_task(change: TaskBecameFinal) -> _FinalTask:
    task = change.task
    reservation = Reservation.from_document(task.budget)
    settlement = (
        Settlement(task.source_id, reservation, summed_cost(task.results) or 0.0, task.attempt)
        if reservation
        else None
    )
    line = FinalLine(task.task_uuid, task.source_id, task.source_seq, task.attempt, settlement)
    return _FinalTask(change.sequence_number, task, line)


def _account(task: TaskRecord, event: Event, report: StreamReport) -> None:
    """A task made final here, in the batch's metrics."""
    report.tasks_final += 1
    if task.status == TaskStatus.COMPLETED and task.completed_at is not None:
        started = task.started_at
        if started is not None:
            report.latencies.append(max(0.0, task.completed_at - started))
    usage = summed_usage(task.results) or {}
    report.prompt_tokens += usage.get("promptTokens", 0)
    report.completion_tokens += usage.get("completionTokens", 0)
    report.cost_usd += event.detail["cost"] or 0.0  # summed there already
