"""A record whose POST failed is redelivered: rows still PENDING must be sent again, whatever enum copy
reports that status (the local runtime gives each function its own module copies; Lambda code may also
compare a status read through another import path)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from runrelay.deadline import Deadline
from runrelay.domain.tasks import NewTask, TaskStatus
from runrelay.runware_errors import TransientRunwareError
from tests.support.fakes import FakeRunware, FakeTaskRepository

from .test_submit_logic import service


class StatusAsPlainText(FakeTaskRepository):
    """Reports existing rows' statuses as equal-but-not-identical values, as another enum copy would."""

    def create_many(
        self,
        rows: Sequence[tuple[NewTask, Mapping[str, Any] | None]],
        *,
        cancelled: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        return [None if s is None else str(s.value) for s in super().create_many(rows, cancelled=cancelled)]


def test_a_redelivered_record_resends_the_rows_its_failed_post_left_pending(runware: FakeRunware) -> None:
    store = StatusAsPlainText()
    svc = service(store, runware)
    body = json.dumps([{"id": "r1", "prompt": "a"}, {"id": "r2", "prompt": "b"}])
    runware.fail_next = 1
    with pytest.raises(TransientRunwareError):
        svc.process_record("m-1", body, Deadline.after(30))

    report = svc.process_record("m-1", body, Deadline.after(30))  # SQS delivers the record again

    assert report.submitted == 2
    assert report.already_known == 0
    assert len(runware.requests) == 1
    views = [store.get_task(task_uuid) for task_uuid in report.task_uuids]
    assert [view.status if view else None for view in views] == [TaskStatus.PENDING] * 2
