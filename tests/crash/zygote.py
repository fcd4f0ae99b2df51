"""The zygote: imports the whole service once, then forks one fresh child per trial.

Run ``python -m tests.crash.zygote`` from the repository root with pipes on stdin and stdout. It
starts no thread and no event loop and opens no database, so ``fork()`` is safe; importing takes
about a second, a fork a millisecond, which makes thousands of restarts affordable.

Protocol (one JSON object per line):

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

import asyncio
import ctypes
import gc
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import traceback

import lockers.crash

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

PR_SET_PDEATHSIG = 1


def _child(spec: dict, stdin_fd: int, stdout_fd: int) -> None:
    code = workload.EXIT_ERROR
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        log_fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        for fd in (null, log_fd, stdin_fd, stdout_fd):
            if fd > 2:
                os.close(fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if spec.get("crash_at"):
            os.environ["POSTKIOSK_CRASH_AT"] = spec["crash_at"]
        else:
            os.environ.pop("POSTKIOSK_CRASH_AT", None)
        lockers.crash._plan = False  # read the environment again at the first crashpoint
        lockers.crash._passed.clear()
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, force=True,
                            format=f"%(asctime)s {os.getpid()} %(levelname)s %(name)s: %(message)s")
        print(f"--- trial {spec.get('trial')} pid {os.getpid()} seed {spec.get('seed')}"
              f" crash_at {spec.get('crash_at')} focus {spec.get('focus')}", file=sys.stderr, flush=True)
        code = asyncio.run(workload.run(spec))
    except BaseException:  # noqa: BLE001 - whatever it is, it is reported through the exit code
        traceback.print_exc()
        code = workload.EXIT_ERROR
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main() -> None:
    assert threading.active_count() == 1, "the zygote must not start threads before forking"
    # The SMS webhook is plain http on 127.0.0.1, yet httpx loads the whole CA bundle for every
    # client it builds: 30-60 ms per restart. An empty CA directory is read lazily (never, here).
    cert_dir = tempfile.mkdtemp(prefix="postkiosk-zygote-ca-")
    os.environ.pop("SSL_CERT_FILE", None)
    os.environ["SSL_CERT_DIR"] = cert_dir
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    out = os.fdopen(os.dup(stdout_fd), "w", buffering=1)

    def say(message: dict) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    gc.collect()
    gc.freeze()  # the imported world stays out of the children's collections (and shared, not copied)
    say({"ready": os.getpid()})
    zombie: int | None = None
    child: int | None = None
    try:
        for line in sys.stdin:
            if zombie is not None:
                os.waitpid(zombie, 0)
                zombie = None
            if not line.strip():
                continue
            spec = json.loads(line)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(spec, stdin_fd, stdout_fd)  # never returns
            child = pid
            say({"pid": pid})
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            status = -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status
            child, zombie = None, pid
            say({"pid": pid, "status": status})
    finally:
        if child is not None:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        if zombie is not None:
            os.waitpid(zombie, 0)
        os.rmdir(cert_dir)


if __name__ == "__main__":
    main()
