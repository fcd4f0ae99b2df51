import asyncio
import os

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_leaks: skip the leaked task/pty/socket check for this test (say why)"
    )


def _tcp_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                inodes.update(line.split()[9] for line in f)
        except OSError:
            pass
    return inodes


def _ptys_and_tcp_sockets() -> dict[int, str]:
    """Open fds of this process that are ptys or TCP sockets: fd -> what it points at."""
    if not os.path.isdir("/proc/self/fd"):
        return {}
    tcp = _tcp_inodes()
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith(("/dev/pts/", "/dev/ptmx")) or (
            target.startswith("socket:[") and target[8:-1] in tcp
        ):
            found[int(name)] = target
    return found


@pytest.fixture(autouse=True)
async def no_leaks(request):
    """Fail a test that leaves asyncio tasks running, or ptys / TCP sockets (servers, clients) open."""
    if request.node.get_closest_marker("allow_leaks"):
        yield
        return
    tasks_before = asyncio.all_tasks()
    fds_before = _ptys_and_tcp_sockets()
    yield
    for _ in range(3):  # let close callbacks that are already scheduled finish
        await asyncio.sleep(0)
    me = asyncio.current_task()
    leaked_tasks = [t for t in asyncio.all_tasks() - tasks_before if t is not me and not t.done()]
    for task in leaked_tasks:
        task.cancel()
    leaked_fds = {
        fd: target for fd, target in _ptys_and_tcp_sockets().items() if fds_before.get(fd) != target
    }
    problems = []
    if leaked_tasks:
        problems.append(f"tasks still running: {leaked_tasks}")
    if leaked_fds:
        problems.append(f"ptys/sockets still open: {leaked_fds}")
    if problems:
        pytest.fail("test leaked resources: " + "; ".join(problems))
