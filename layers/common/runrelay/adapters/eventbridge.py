"""The event publisher on EventBridge: PutEvents in batches, refused entries sent again."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from ..domain.events import EVENT_SOURCE, Event

_PUT_EVENTS_LIMIT = 10
_PUT_ATTEMPTS = 4


class EventsNotDelivered(RuntimeError):
    """EventBridge refused some entries even after retries."""


class EventBridgePublisher:
    def __init__(self, bus_name: str, *, events_client: Any) -> None:
        self.bus_name = bus_name
        self.events = events_client

    def publish(self, events: Sequence[Event]) -> None:
        """PutEvents in batches of 10; entries EventBridge refuses are retried, then raise."""
        for start in range(0, len(events), _PUT_EVENTS_LIMIT):
            self._put([self._entry(e) for e in events[start : start + _PUT_EVENTS_LIMIT]])

    def _entry(self, event: Event) -> dict[str, Any]:
        return {
            "Source": EVENT_SOURCE,
            "DetailType": event.detail_type,
            "Detail": json.dumps(event.detail, ensure_ascii=False),
            "EventBusName": self.bus_name,
        }

    def _put(self, entries: list[dict[str, Any]]) -> None:
        for attempt in range(_PUT_ATTEMPTS):
            answer = self.events.put_events(Entries=entries)
            if not answer.get("FailedEntryCount"):
                return
            # Entries answer in request order; only those with an ErrorCode were not accepted.
            entries = [
                entry
                for entry, outcome in zip(entries, answer["Entries"], strict=True)
                if outcome.get("ErrorCode")
            ]
            time.sleep(0.1 * 2**attempt)
        raise EventsNotDelivered(f"{len(entries)} events refused by EventBridge bus {self.bus_name}")
