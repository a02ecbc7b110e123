"""Submit: ingest-queue records → PENDING rows → batched async POSTs to Runware.

Order matters for exactly-once: the row is written (conditionally) before the POST, and the taskUUID is
derived from the idempotency key. A PENDING row says the task may have been sent; nothing is written
after the POST (the webhook's result, or the reconciler's getResponse, says what Runware did). A crash
anywhere heals on redelivery: rows still PENDING are sent again with the same taskUUID, and Runware's
conflictTaskUUID answer counts as accepted. A task that wants N results goes to Runware as N tasks of one
result (`task_ids.result_task_uuid`), and counts as submitted once Runware has all N.

Before each chunk the source's cancellation is read (`domain.cancellations`): a cancelled source's lines
are written CANCELLED and nothing more is sent. Under a budget (`domain.budgets`) each chunk first
reserves its estimated cost; a chunk without room is written CANCELLED (budgetExceeded), and so is the
rest of its source in this invocation. A retry (`domain.retries`) reopens a file's failed tasks as new
attempts and sends just those lines again, read back from the file.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from .contract import TextInferenceTask
from .deadline import Deadline
from .domain.budgets import Budget, Reservation, daily_budget
from .domain.cancellations import Cancellation
from .domain.jobs import has_job
from .domain.retries import RetryRefused, RetryRequest, refusal_for_job
from .domain.tasks import NewTask, TaskStatus
from .inputs import (
    ControlMessage,
    IgnoredMessage,
    ObjectRange,
    Rejection,
    S3ObjectRef,
    SourceItem,
    SqsTaskMessage,
    TaskSpec,
    classify_sqs_body,
    continuation_message,
    items_of_message,
    items_of_object,
    refused_message,
    split_jsonl,
)
from .models import DEFAULT_MODEL, ModelEntry
from .ports import JobRepository, RunwareSubmitter, SpendLedger, TaskRepository
from .task_ids import result_task_uuid, task_uuid_for
from .webhook_token import webhook_url_for


@dataclass
class SubmitReport:
    """What one record produced; the handler turns it into metrics."""

    submitted: int = 0
    already_known: int = 0
    rejected: int = 0
    cancelled: int = 0
    over_budget: int = 0  # lines CANCELLED unsent because a budget had no room for them
    retried: int = 0  # failed tasks reopened as a new attempt by a retry
    retries: int = 0
    http_requests: int = 0
    continued: bool = False
    fanned_out: int = 0  # ranges of a big object queued as messages of their own
    ignored: str | None = None
    control: str | None = None  # what a control message asked for
    refused: str | None = None  # why a control message could not be carried out
    task_uuids: list[str] = field(default_factory=list)

    def add(self, other: SubmitReport) -> None:
        self.submitted += other.submitted
        self.already_known += other.already_known
        self.rejected += other.rejected
        self.cancelled += other.cancelled
        self.over_budget += other.over_budget
        self.retried += other.retried
        self.retries += other.retries
        self.http_requests += other.http_requests
        self.continued = self.continued or other.continued
        self.fanned_out += other.fanned_out
        self.task_uuids.extend(other.task_uuids)


@dataclass(frozen=True)
class SubmitConfig:
    webhook_base_url: str
    webhook_secret: str
    max_tasks_per_request: int = 100
    # Stop taking new chunks of a big object with this much time left; the rest is re-queued.
    continuation_reserve_seconds: float = 20.0
    # Chunks of one object in flight at once: their rows are written while earlier chunks' POSTs wait
    # for the Runware client's window (back_pressure.DEFAULT_POSTS_IN_FLIGHT, fewer after a 429), so
    # the table's round trips overlap the POSTs' (bench/README.md, submit_throughput).
    chunks_in_flight: int = 8
    # A JSONL object with more than twice this much left is cut into line-aligned ranges of about this
    # size, each queued as its own message, so that several invocations submit it at once (0: never).
    fan_out_range_bytes: int = 16 * 1024 * 1024
    model: ModelEntry = DEFAULT_MODEL
    # Spend caps (`domain.budgets`): the whole stack's per UTC day (0: none), and what a result is
    # reckoned to cost until Runware reports its real cost.
    daily_budget_usd: float = 0.0
    estimated_cost_per_result_usd: float = 0.001


@dataclass
class _Planned:
    item: SourceItem
    task: NewTask
    requests: list[TextInferenceTask] = field(default_factory=list)  # one per result wanted
    rejection: Rejection | None = None

    @property
    def runware_uuids(self) -> list[str]:
        return [str(request.taskUUID) for request in self.requests]


class SubmitService:
    def __init__(
        self,
        store: TaskRepository,
        runware: RunwareSubmitter,
        config: SubmitConfig,
        *,
        open_object: Callable[[S3ObjectRef], Any] | None = None,
        enqueue: Callable[[str], None] | None = None,
        jobs: JobRepository | None = None,
        ledger: SpendLedger | None = None,
        object_budget: Callable[[S3ObjectRef], float | None] | None = None,
    ) -> None:
        self.store = store
        self.jobs = jobs  # None: no JOB records, hence no results files for S3 inputs
        self.ledger = ledger  # None: no spend caps
        self._object_budget = object_budget
        self._source_budgets: dict[str, float | None] = {}
        self._over_budget: dict[str, dict[str, Any]] = {}  # sources refused in this record, and why
        self.runware = runware
        self.config = config
        self._open_object = open_object
        self._enqueue = enqueue
        self._cancelled: dict[str, Cancellation] = {}

    def process_record(self, message_id: str, body: str, deadline: Deadline) -> SubmitReport:
        """Handle one ingest-queue record. Raises on transient trouble so SQS redelivers the record."""
        # Budgets are found again by each record: real costs free room, and a warm container keeps nothing.
        self._over_budget.clear()
        self._source_budgets.clear()
        kind = classify_sqs_body(message_id, body)
        if isinstance(kind, IgnoredMessage):
            return SubmitReport(ignored=kind.reason)
        if isinstance(kind, Rejection):
            return self._submit_items([refused_message(message_id, kind)], deadline)
        if isinstance(kind, SqsTaskMessage):
            self._source_budgets[f"sqs:{kind.message_id}"] = kind.budget_usd
            return self._submit_items(items_of_message(kind), deadline)
        if isinstance(kind, ControlMessage) and kind.action == "retry":
            return self._retry(kind.retry_request(), deadline)
        if isinstance(kind, ControlMessage):
            return self._cancel(kind)
        report = SubmitReport()
        for ref in kind:
            report.add(self._submit_object(ref, deadline))
        return report

    def _cancel(self, control: ControlMessage) -> SubmitReport:
        """Record the cancellation; the source's lines see it at their next chunk (rows left PENDING by
        a failed attempt are cancelled when their record comes again)."""
        if self.jobs is None:
            raise RuntimeError("cancelling needs the job repository")
        self.jobs.cancel_source(control.sourceId, control.requestedBy, time.time())
        return SubmitReport(control=f"{control.action} {control.sourceId} by {control.requestedBy}")

    def _retry(self, request: RetryRequest, deadline: Deadline) -> SubmitReport:
        """Run a file's failed lines again (`domain.retries`); a retry that cannot start is reported,
        not raised: redelivering it would not change the answer."""
        try:
            return self._run_retry(request, deadline)
        except RetryRefused as refused:
            return SubmitReport(control=f"retry {request.source_id}", refused=str(refused))

    def _run_retry(self, request: RetryRequest, deadline: Deadline) -> SubmitReport:
        source = request.source_id
        if not has_job(source):
            return self._retry_message(request, deadline)
        if self.jobs is None:
            raise RetryRefused("retrying a file needs the job repository")
        job = self.jobs.get(source)
        if job is None or not (job.bucket and job.key and job.etag):
            raise RetryRefused(f"no file job {source}")
        refusal = refusal_for_job(job.expected, job.finals, job.held, job.announced)
        if refusal is not None:
            raise RetryRefused(refusal)
        if self.jobs.cancellation(source) is not None:
            raise RetryRefused("the file was cancelled")
        retry_round = job.retry_round if job.held else job.retry_round + 1
        tasks = list(self.store.tasks_in_order(self.store.task_uuids_of_source(source)))
        chosen = [task for task in tasks if request.wants(task)]
        # A round cut short (a crash, a timeout) left reopened tasks unsent: they go now.
        unsent = {
            t.source_seq: t.attempt
            for t in tasks
            if job.held and t.attempt and t.status == TaskStatus.PENDING
        }
        report = SubmitReport(control=f"retry {source} round {retry_round} by {request.requested_by}")
        if not chosen and not unsent:
            report.refused = "nothing to retry: no failed line matches"
            return report
        ref = S3ObjectRef(job.bucket, job.key, job.etag, if_match=True)
        with self._opened(ref) as body:  # opened first: a changed or deleted file reopens nothing
            reopened = self.store.reopen_for_retry(source, retry_round, chosen) if chosen else []
            report.retried = len(reopened)
            wanted = unsent | {task.source_seq: task.attempt for task in reopened}
            lines = ((item, wanted[item.seq]) for item, _ in items_of_object(ref, body) if item.seq in wanted)
            self._send_attempts(lines, deadline, report)
        self.jobs.release_round(source, retry_round)
        return report

    def _retry_message(self, request: RetryRequest, deadline: Deadline) -> SubmitReport:
        """An SQS message's failed tasks, rebuilt from the specs their rows keep (it has no job, hence
        no round and no results file)."""
        source = request.source_id
        if not source.startswith("sqs:"):
            raise RetryRefused("a source is a file (s3://bucket/key#etag) or an SQS message (sqs:<id>)")
        if self.jobs is not None and self.jobs.cancellation(source) is not None:
            raise RetryRefused("the message was cancelled")
        tasks = list(self.store.tasks_in_order(self.store.task_uuids_of_source(source)))
        chosen = [task for task in tasks if request.wants(task)]
        unkept = [task.source_seq for task in chosen if not task.spec]
        if unkept:
            raise RetryRefused(f"tasks {unkept} of {source} keep no spec (made before specs were kept)")
        # Reopened by an earlier try of this retry that stopped before sending: they go now.
        attempts = {t.task_uuid: t.attempt for t in tasks if t.attempt and t.status == TaskStatus.PENDING}
        report = SubmitReport(control=f"retry {source} by {request.requested_by}")
        if not chosen and not attempts:
            report.refused = "nothing to retry: no failed task matches"
            return report
        reopened = self.store.reopen_for_retry(source, 0, chosen)
        report.retried = len(reopened)
        attempts |= {task.task_uuid: task.attempt for task in reopened}
        rebuilt = (
            (
                SourceItem(
                    source, t.source_seq, t.idempotency_key, TaskSpec.model_validate(t.spec), t.caller_id
                ),
                attempts[t.task_uuid],
            )
            for t in tasks
            if t.task_uuid in attempts
        )
        self._send_attempts(rebuilt, deadline, report)
        return report

    def _send_attempts(
        self, lines: Iterable[tuple[SourceItem, int]], deadline: Deadline, report: SubmitReport
    ) -> None:
        """Send reopened lines (their rows are PENDING on the attempt given), a chunk per POST."""
        for chunk in _chunks(lines, self.config.max_tasks_per_request):
            planned = [self._plan(item, attempt) for item, attempt in chunk]
            report.add(self._send(planned, deadline, SubmitReport()))

    def _cancellation_of(self, source_id: str) -> Cancellation | None:
        """Read before each chunk; once found it is kept (a cancellation is never lifted)."""
        if self.jobs is None:
            return None
        if source_id not in self._cancelled:
            found = self.jobs.cancellation(source_id)
            if found is None:
                return None
            self._cancelled[source_id] = found
        return self._cancelled[source_id]

    def _submit_object(self, ref: S3ObjectRef, deadline: Deadline) -> SubmitReport:
        if self._worth_fanning_out(ref):
            fanned = self._fan_out(ref, deadline)
            if fanned is not None:
                return fanned
        with self._opened(ref) as body:
            if self._object_budget is not None:  # read off the object as it was opened
                self._source_budgets[ref.source_id] = self._object_budget(ref)
            report = SubmitReport()
            tasks_so_far = ref.start_task
            offsets = items_of_object(ref, body)
            # Chunks are independent (own rows, own POST), so several are in flight while this thread
            # reads and parses the next: a chunk's two table writes and its POST are round trips.
            with _ChunkPipeline(self.config.chunks_in_flight, report) as pipeline:
                for chunk in _chunks(offsets, self.config.max_tasks_per_request):
                    pipeline.put(self._submit_items, [item for item, _ in chunk], deadline)
                    tasks_so_far += len(chunk)
                    _, end_byte = chunk[-1]
                    if deadline.remaining() < self.config.continuation_reserve_seconds and self._has_more(
                        ref, end_byte
                    ):
                        pipeline.drain()  # every chunk before the continuation point is settled first
                        self._continue_later(ref, end_byte, chunk[-1][0].seq, tasks_so_far)
                        report.continued = True
                        return report
            # The object's last row exists now (a fan-out range stops short of the end and counts only
            # its own): only here is its task count known.
            if ref.end_byte is None and self.jobs is not None and has_job(ref.source_id):
                self.jobs.record_total(
                    ref.source_id, tasks_so_far, bucket=ref.bucket, key=ref.key, etag=ref.etag
                )
            return report

    @contextmanager
    def _opened(self, ref: S3ObjectRef) -> Iterator[Any]:
        """The object's body from `ref.start_byte` (to `ref.end_byte`), closed however the reading ends."""
        if self._open_object is None:
            raise RuntimeError("S3 input needs an object reader")
        body = self._open_object(ref)
        try:
            yield body
        finally:
            close = getattr(body, "close", None)
            if close:
                close()

    def _has_more(self, ref: S3ObjectRef, end_byte: int) -> bool:
        limit = ref.size if ref.end_byte is None else ref.end_byte
        return limit is None or end_byte < limit

    def _worth_fanning_out(self, ref: S3ObjectRef) -> bool:
        range_bytes = self.config.fan_out_range_bytes
        return (
            range_bytes > 0
            and self._enqueue is not None
            and ref.end_byte is None
            and ref.size is not None
            and ref.size - ref.start_byte > 2 * range_bytes
            and ref.key.lower().endswith((".jsonl", ".ndjson"))
        )

    def _fan_out(self, ref: S3ObjectRef, deadline: Deadline) -> SubmitReport | None:
        """Cut the rest of a big JSONL object into ranges and queue each; None: not worth it after all.

        One pass over the bytes (counting, no parsing) gives every range its first line number and the
        task count before it, so each is submitted with the same taskUUIDs as one sequential run. The last
        range runs to the end of the object and records its task total. Running short of time, the scan
        queues the ranges it has and the rest as one more message, which is cut again in its turn. Queued
        twice (a redelivered record), a range only finds its rows already there.
        """
        assert self._enqueue is not None
        ranges: list[ObjectRange] = []
        with self._opened(ref) as body:
            for piece in split_jsonl(ref, body, self.config.fan_out_range_bytes):
                ranges.append(piece)
                if deadline.remaining() < self.config.continuation_reserve_seconds:
                    break
        if len(ranges) < 2 or ranges[-1].end_task == ref.start_task:
            return None  # one piece, or no task line at all: the sequential path says so properly
        last_reaches_end = ranges[-1].end_byte == ref.size
        for index, piece in enumerate(ranges):
            open_ended = index == len(ranges) - 1 and last_reaches_end
            bounded = replace(ref, end_byte=None if open_ended else piece.end_byte)
            self._enqueue(continuation_message(bounded, piece.start_byte, piece.start_line, piece.start_task))
        if not last_reaches_end:
            tail = ranges[-1]
            self._enqueue(continuation_message(ref, tail.end_byte, tail.end_line, tail.end_task))
        return SubmitReport(continued=True, fanned_out=len(ranges))

    def _continue_later(self, ref: S3ObjectRef, start_byte: int, start_line: int, start_task: int) -> None:
        if self._enqueue is None:
            raise RuntimeError(f"no time left for {ref.key} and no queue to continue it on")
        self._enqueue(continuation_message(ref, start_byte, start_line, start_task))

    def _submit_items(self, items: Iterable[SourceItem], deadline: Deadline) -> SubmitReport:
        report = SubmitReport()
        for chunk in _chunks(items, self.config.max_tasks_per_request):
            report.add(self._submit_chunk([self._plan(item) for item in chunk], deadline))
        return report

    def _plan(self, item: SourceItem, attempt: int = 0) -> _Planned:
        task_uuid = str(task_uuid_for(item.idempotency_key))
        spec = item.spec
        if isinstance(spec, Rejection):
            return _Planned(item, self._new_task(item, task_uuid, None), rejection=spec)
        task = self._new_task(item, task_uuid, spec)
        try:
            requests = [
                self._request_for(task_uuid, spec, slot, attempt) for slot in range(spec.numberResults)
            ]
        except ValueError as error:  # e.g. a spec valid alone but not as a Runware task
            return _Planned(item, task, rejection=Rejection("invalidTaskSpec", str(error)))
        return _Planned(item, task, requests=requests)

    @staticmethod
    def _new_task(item: SourceItem, task_uuid: str, spec: TaskSpec | None) -> NewTask:
        return NewTask(
            task_uuid=task_uuid,
            idempotency_key=item.idempotency_key,
            source_id=item.source_id,
            source_seq=item.seq,
            number_results=spec.numberResults if spec else 1,
            caller_id=item.caller_id,
            metadata=spec.metadata if spec else None,
            # An SQS message is gone once taken: its spec is kept, so that a retry can rebuild the task.
            spec=spec.model_dump(mode="json", exclude_none=True)
            if spec and not has_job(item.source_id)
            else None,
        )

    def _request_for(self, task_uuid: str, spec: TaskSpec, slot: int, attempt: int) -> TextInferenceTask:
        """Result `slot` of the task's attempt `attempt`, as a Runware task of its own."""
        config = self.config
        webhook_url = webhook_url_for(
            config.webhook_base_url, config.webhook_secret, task_uuid, slot, attempt
        )
        runware_uuid = result_task_uuid(task_uuid, slot, attempt)
        request: TextInferenceTask = config.model.build_request(runware_uuid, spec, webhook_url, slot)
        return request

    def _submit_chunk(self, planned: list[_Planned], deadline: Deadline) -> SubmitReport:
        report = SubmitReport(task_uuids=[p.task.task_uuid for p in planned])
        source = planned[0].task.source_id  # a chunk has one source
        cancellation = self._cancellation_of(source)
        cancelled = cancellation.error() if cancellation else None
        budgets: list[Budget] = []
        if cancelled is None:
            budgets, planned, cancelled = self._reserve(source, planned)
        statuses = self.store.create_many(
            [(plan.task, self._rejection_error(plan)) for plan in planned], cancelled=cancelled
        )
        sent: list[_Planned] = []
        known_cost = 0.0  # reserved again for lines that were there already
        for plan, existing in zip(planned, statuses, strict=True):
            if existing is not None and plan.task.budget:
                known_cost += float(plan.task.budget["reservedUSD"])
            if plan.rejection is not None:
                report.rejected += existing is None
                report.already_known += existing is not None
            elif cancelled is not None and existing is None:
                report.cancelled += 1
                report.over_budget += source in self._over_budget
            elif cancelled is not None and existing == TaskStatus.PENDING:
                # Left PENDING by an earlier attempt, most likely sent: not sent again, and left open so
                # that its result is stored if Runware ran it (the reconciler fails it if it never had it).
                report.already_known += 1
            elif existing is None or existing == TaskStatus.PENDING:  # == : equal across module copies
                # New, or left PENDING by an earlier run that crashed or timed out: (re)send.
                sent.append(plan)
            else:
                report.already_known += 1
        if known_cost and self.ledger is not None:
            self.ledger.release(budgets, known_cost)
        return self._send(sent, deadline, report)

    def _budgets_of(self, source: str) -> list[Budget]:
        budgets = []
        if self.config.daily_budget_usd > 0:
            budgets.append(daily_budget(self.config.daily_budget_usd, time.time()))
        source_budget = self._source_budgets.get(source)
        if source_budget is not None:
            budgets.append(Budget("source", source, source_budget))
        return budgets

    def _reserve(
        self, source: str, planned: list[_Planned]
    ) -> tuple[list[Budget], list[_Planned], dict[str, Any] | None]:
        """Reserve the chunk's estimated cost on its budgets: (the budgets, the plans with what each
        reserved, None), or when a budget has no room (or had none earlier): ([], plans, the error the
        lines are CANCELLED with)."""
        budgets = self._budgets_of(source) if self.ledger is not None else []
        if not budgets:
            return [], planned, None
        assert self.ledger is not None
        if source in self._over_budget:
            return [], planned, self._over_budget[source]
        per_result = self.config.estimated_cost_per_result_usd
        amount = per_result * sum(len(plan.requests) for plan in planned if plan.rejection is None)
        if amount <= 0:
            return [], planned, None
        full = self.ledger.reserve(budgets, amount)
        if full is not None:
            self._over_budget[source] = full.exceeded_error(amount)
            return [], planned, self._over_budget[source]
        day = next((b.name for b in budgets if b.scope == "day"), None)
        has_source_budget = any(b.scope == "source" for b in budgets)
        reserved = [
            replace(
                plan,
                task=replace(
                    plan.task,
                    budget=Reservation(per_result * len(plan.requests), day, has_source_budget).as_document(),
                ),
            )
            if plan.rejection is None
            else plan
            for plan in planned
        ]
        return budgets, reserved, None

    def _send(self, sent: list[_Planned], deadline: Deadline, report: SubmitReport) -> SubmitReport:
        """POST the planned tasks (their PENDING rows exist): nothing is written for what Runware took."""
        refused_here = [plan for plan in sent if plan.rejection is not None]
        for plan in refused_here:  # a retried line whose spec no longer builds a Runware task
            report.rejected += self.store.mark_rejected(
                plan.task.task_uuid, self._rejection_error(plan) or {}
            )
        sent = [plan for plan in sent if plan.rejection is None]
        if not sent:
            return report
        outcome = self.runware.submit([request for plan in sent for request in plan.requests], deadline)
        report.http_requests += outcome.http_requests
        report.retries += outcome.retries
        accepted = set(outcome.accepted)
        # Submitted once Runware has every one of its results' tasks; one short of some is sent again on a
        # redelivery (the others then answer conflictTaskUUID).
        report.submitted += sum(accepted.issuperset(plan.runware_uuids) for plan in sent)
        for plan in sent:  # rare: our models already match Runware's schema
            refused = [outcome.rejected[uuid] for uuid in plan.runware_uuids if uuid in outcome.rejected]
            if refused:
                self.store.mark_rejected(plan.task.task_uuid, refused[0].model_dump(exclude_none=True))
                report.rejected += 1
        return report

    @staticmethod
    def _rejection_error(plan: _Planned) -> dict[str, str] | None:
        if plan.rejection is None:
            return None
        return {"code": plan.rejection.code, "message": plan.rejection.message}


class _ChunkPipeline:
    """At most `depth` chunk submissions running at once; their reports are added in order.

    Leaving the block waits for every running chunk, and re-raises the first failure once all have
    stopped, so nothing keeps writing after the record is answered (a failed record is redelivered,
    and every step of a chunk is idempotent).
    """

    def __init__(self, depth: int, report: SubmitReport) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, depth), thread_name_prefix="chunk")
        self._depth = max(1, depth)
        self._running: deque[Future[SubmitReport]] = deque()
        self._report = report

    def __enter__(self) -> _ChunkPipeline:
        return self

    def put(self, submit: Callable[..., SubmitReport], *args: Any) -> None:
        if len(self._running) >= self._depth:
            self._report.add(self._running.popleft().result())
        self._running.append(self._pool.submit(submit, *args))

    def drain(self) -> None:
        while self._running:
            self._report.add(self._running.popleft().result())

    def __exit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None:
                self.drain()
        finally:
            for future in self._running:
                future.cancel()
            self._pool.shutdown(wait=True)  # the ones already running finish before we answer


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
