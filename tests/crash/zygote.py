"""The zygote: imports the whole service once, then forks one fresh child per trial.

Run ``python -m tests.crash.zygote`` from the repository root with pipes on stdin and stdout. It
starts no thread and no event loop and opens no database, so ``fork()`` is safe; importing takes
about a second, a fork a millisecond, which makes thousands of restarts affordable.

The fork loop and its protocol are ``tests.crash.forkserver``'s (one JSON object per line):

* driver -> zygote: a trial spec (see ``workload.run``; plus ``crash_at`` "name:n" or null and
  ``log``, the child's log file).
* zygote -> driver: ``{"ready": pid}`` once at start; per trial ``{"pid": pid}`` right after the
  fork, then ``{"pid": pid, "status": code}`` when the child has ended (``-9``: SIGKILL, by the
  driver or by a crashpoint). The ended child stays a zombie until the next spec arrives, so its
  pid cannot be reused while the driver may still send it a SIGKILL.

The child gets ``POSTKIOSK_CRASH_AT`` set (or removed) and ``lockers.crash`` re-armed (the plan is
read lazily once per process, and the zygote's copy must not leak into the child), writes its
output to its log, dies with the zygote (PR_SET_PDEATHSIG), and leaves with ``os._exit``.
EOF on stdin: the zygote kills a child still running and exits.
"""

from __future__ import annotations

import os
import tempfile
import threading

# Everything the child needs, imported here once (including what is otherwise imported lazily:
# httpx's transport and backend, the lock backend, pyserial's socket:// handler).
import anyio._backends._asyncio  # noqa: F401
import certifi  # noqa: F401
import concurrent.futures.thread  # noqa: F401
import hal.lockbank_kerong  # noqa: F401
import httpcore._async.connection_pool  # noqa: F401
import httpcore._async.http11  # noqa: F401
import httpcore._backends.anyio  # noqa: F401
import httpcore._backends.auto  # noqa: F401
import serial.urlhandler.protocol_socket  # noqa: F401
import serial_asyncio_fast  # noqa: F401
from tests.crash import workload
from tests.crash.forkserver import serve

def main() -> None:
    assert threading.active_count() == 1, "the zygote must not start threads before forking"
    # The SMS webhook is plain http on 127.0.0.1, yet httpx loads the whole CA bundle for every
    # client it builds: 30-60 ms per restart. An empty CA directory is read lazily (never, here).
    cert_dir = tempfile.mkdtemp(prefix="postkiosk-zygote-ca-")
    os.environ.pop("SSL_CERT_FILE", None)
    os.environ["SSL_CERT_DIR"] = cert_dir
    try:
        serve(workload.run, exit_error=workload.EXIT_ERROR,
              banner=lambda spec: f"trial {spec.get('trial')} seed {spec.get('seed')} focus {spec.get('focus')}")
    finally:
        os.rmdir(cert_dir)


if __name__ == "__main__":
    main()
