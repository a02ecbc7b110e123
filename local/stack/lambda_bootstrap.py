"""What a local execution environment runs: AWS's runtime interface client, unchanged.

Started as `python lambda_bootstrap.py <module>.<function>` with the function's code folder as
working directory and the function's own environment (AWS_LAMBDA_RUNTIME_API among it). Files named
in RUNRELAY_LOCAL_PRELOAD (os.pathsep-separated) run first, in this process only: the stack's test and
fault-injection hooks. The handler is then loaded and called by `awslambdaric` as on AWS.
"""

import os
import runpy
import sys

# As on Lambda the task root comes first on sys.path, not this file's folder.
sys.path[0] = os.getcwd()
for preload in filter(None, os.environ.pop("RUNRELAY_LOCAL_PRELOAD", "").split(os.pathsep)):
    runpy.run_path(preload)

from awslambdaric.__main__ import main  # noqa: E402  (after the preload, as the runtime would)

main(sys.argv)
