"""Request builders, one per model entry (`models.py`): a task spec → the request item Runware takes.

Each builder's request model carries the model's own settings and bounds (`contract.py` for MiniMax
M2.7, mirroring the OpenAPI file). Imported by the submitter only.
"""

from __future__ import annotations

from .contract import MAX_SEED, TextInferenceTask
from .inputs import TaskSpec


def slot_seed(seed: int | None, slot: int) -> int | None:
    """Result `slot`'s seed: the caller's seed + slot (wrapping in Runware's range), so a seeded task's
    results are reproducible and differ from each other; None leaves the choice to Runware."""
    return None if seed is None else (seed + slot) % (MAX_SEED + 1)


def minimax_m2_7(runware_task_uuid: str, spec: TaskSpec, webhook_url: str, slot: int) -> TextInferenceTask:
    """Result `slot` of the task as a Runware task of one result (`task_ids.result_task_uuid`)."""
    return TextInferenceTask(
        taskUUID=runware_task_uuid,  # pydantic parses the string
        messages=spec.conversation(),
        settings=spec.settings,
        seed=slot_seed(spec.seed, slot),
        deliveryMethod="async",
        includeUsage=True,
        includeCost=True,
        webhookURL=webhook_url,
    )
