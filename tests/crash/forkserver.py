"""The fork loop both kill -9 zygotes share (``tests.crash.zygote`` for custody, and
``tests.crash.payments_workload`` for payments): after the caller has imported everything once, read
one JSON spec per line, fork a child per spec, and report its pid and how it ended.

Protocol (one JSON object per line): driver -> zygote a spec (with ``log``, the child's log file,
and ``crash_at`` "name:n" or null); zygote -> driver ``{"ready": pid}`` once, then per spec
``{"pid": pid}`` right after the fork and ``{"pid": pid, "status": code}`` when the child has ended
(``-9``: SIGKILL, by the driver or by a crashpoint). The ended child stays a zombie until the next
spec arrives, so its pid cannot be reused while the driver may still send it a SIGKILL. EOF on stdin:
a child still running is killed and the loop returns.

The child gets ``POSTKIOSK_CRASH_AT`` set (or removed) and ``lockers.crash`` re-armed (the plan is
read lazily once per process: the zygote's copy must not leak into the child), writes its output
to its log, dies with the zygote (PR_SET_PDEATHSIG), and leaves with ``os._exit``.
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
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import lockers.crash

PR_SET_PDEATHSIG = 1
Spec = dict[str, Any]


def _child(spec: Spec, run: Callable[[Spec], Awaitable[int]], banner: Callable[[Spec], str],
           exit_error: int, close_fds: tuple[int, ...]) -> None:
    code = exit_error
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        log_fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        for fd in (null, log_fd, *close_fds):
            if fd > 2:
                os.close(fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if spec.get("crash_at"):
            os.environ["POSTKIOSK_CRASH_AT"] = spec["crash_at"]
        else:
            os.environ.pop("POSTKIOSK_CRASH_AT", None)
        lockers.crash._plan = False  # read the environment again at the first crashpoint
        lockers.crash._passed.clear()
        logging.basicConfig(level=logging.INFO if spec.get("verbose") else logging.WARNING, stream=sys.stderr,
                            force=True, format=f"%(asctime)s {os.getpid()} %(levelname)s %(name)s: %(message)s")
        print(f"--- {banner(spec)} pid {os.getpid()} crash_at {spec.get('crash_at')}", file=sys.stderr, flush=True)
        code = asyncio.run(run(spec))
    except BaseException:  # noqa: BLE001 - whatever it is, it is reported through the exit code
        traceback.print_exc()
        code = exit_error
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(run: Callable[[Spec], Awaitable[int]], *, banner: Callable[[Spec], str], exit_error: int) -> None:
    """Fork ``asyncio.run(run(spec))`` for every spec read from stdin, until EOF."""
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    out = os.fdopen(os.dup(stdout_fd), "w", buffering=1)

    def say(message: Spec) -> None:
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
                _child(spec, run, banner, exit_error, (stdin_fd, stdout_fd, out.fileno()))  # never returns
            child = pid
            say({"pid": pid})
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            status = -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status
            child, zombie = None, pid  # reaped at the next spec: the pid cannot be reused meanwhile
            say({"pid": pid, "status": status})
    finally:
        if child is not None:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        if zombie is not None:
            os.waitpid(zombie, 0)
