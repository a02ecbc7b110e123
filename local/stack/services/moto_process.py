"""Child-process entry point of the moto server (S3, SQS, Secrets Manager, ...).

Run as `python -m local.stack.services.moto_process`: binds an ephemeral loopback port, prints
`READY <port>`, serves until its stdin closes (the parent stopped it or died), then exits. A separate
process keeps moto's global state away from tests that use `moto.mock_aws` in the parent.
"""

from __future__ import annotations

import logging
import sys

from moto.server import ThreadedMotoServer

from local.net import LOOPBACK
from local.stack.services import s3_event_fidelity

READY_PREFIX = "READY "


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    s3_event_fidelity.apply()
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    try:
        _host, port = server.get_host_and_port()
        print(f"{READY_PREFIX}{port}", flush=True)
        sys.stdin.read()  # EOF = parent asked us to stop, or is gone
    finally:
        server.stop()


if __name__ == "__main__":
    main()
