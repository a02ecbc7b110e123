"""A made-up second model for the (taskType, model) seam's tests: nothing registers it outside them.

Its results differ from MiniMax's: the results file keeps `choiceIndex` and `logprob` (not usage, cost or
seed).
"""

from __future__ import annotations

from runrelay.models import TEXT_INFERENCE, ModelEntry

ACME_TINY = ModelEntry(
    task_type=TEXT_INFERENCE,
    model="acme:tiny@1",
    result_fields=("text", "choiceIndex", "logprob", "payloadRef", "payloadBytes"),
)
