"""Benchmark 6: peak RSS while reading a 200 MB JSONL object through the submit path's streaming reader
(`inputs.items_of_object`, 256 KB reads) vs the same process reading an empty object.

The object is generated on the fly by a file-like stream (never whole in memory), as S3's streaming
body hands it over; each child imports the submit handler first, so both carry the same code.
Peak RSS is the child's `ru_maxrss`.
"""

from __future__ import annotations

import argparse

from bench import harness
from bench.stats import Check, Report, median

_CHILD = """
import json, resource, sys
sys.path[:0] = {path!r}
import app
from runrelay.inputs import S3ObjectRef, items_of_object

LINE = (json.dumps({{"prompt": "Summarise the history of message queues in one paragraph. " * 4,
                    "settings": {{"temperature": 0.5, "maxTokens": 256}}, "metadata": {{"batch": "bench"}}}})
        + "\\n").encode()

class Stream:
    def __init__(self, total):
        self.left = total
    def read(self, size=-1):
        size = min(size if size > 0 else 1 << 20, self.left)
        if size <= 0:
            return b""
        whole, rest = divmod(size, len(LINE))
        self.left -= size
        return LINE * whole + LINE[:rest]

ref = S3ObjectRef("bucket", "incoming/big.jsonl", "etag", size={size})
tasks = sum(1 for _ in items_of_object(ref, Stream({size})))
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print({prefix!r} + json.dumps({{"peak_kb": peak_kb, "tasks": tasks}}))
"""

SIZE = 200 * 1024 * 1024


def run(args: argparse.Namespace) -> Report:
    size = SIZE // 10 if args.quick else SIZE
    env = harness.child_env(harness.static_lambda_env("submit"))

    def child(nbytes: int) -> dict[str, int]:
        code = _CHILD.format(
            path=harness.lambda_sys_path("submit"), size=nbytes, prefix=harness.RESULT_PREFIX
        )
        return dict(harness.run_child(code, env, timeout=600))

    runs = 1 if args.quick else 2
    subject, baseline = [], []
    tasks = 0
    for _ in range(runs):
        big = child(size)
        tasks = big["tasks"]
        subject.append(float(big["peak_kb"]))
        baseline.append(float(child(0)["peak_kb"]))
    ratio = median(subject) / median(baseline)
    return Report(
        f"peak RSS: {size // (1024 * 1024)} MB JSONL streamed ({tasks} lines) vs empty object",
        [
            Check(
                "peak RSS 200 MB object / empty object",
                ratio,
                2.0,
                subject=median(subject) / 1024,
                baseline=median(baseline) / 1024,
                detail="MB",
            )
        ],
    )


if __name__ == "__main__":
    harness.main(run)
