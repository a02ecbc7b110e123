"""Request builders, one per model entry (`models.py`): a task spec → the request item Runware takes.

Each builder's request model carries the model's own settings and bounds (`contract.py` for MiniMax
M2.7, mirroring the OpenAPI file). Imported by the submitter only.
"""

from __future__ import annotations

from .contract import TextInferenceTask
from .inputs import TaskSpec


def minimax_m2_7(task_uuid: str, spec: TaskSpec, webhook_url: str) -> TextInferenceTask:
    return TextInferenceTask(
        taskUUID=task_uuid,  # pydantic parses the string
        messages=spec.conversation(),
        settings=spec.settings,
        seed=spec.seed,
        numberResults=spec.numberResults,
        deliveryMethod="async",
        includeUsage=True,
        includeCost=True,
        webhookURL=webhook_url,
    )
