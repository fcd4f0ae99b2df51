"""The simulated locker wall as its own long-lived process: it survives every kill of the service,
like the physical wall survives a crash of the Pi.

Run ``python -m tests.crash.wall`` (from the repository root). It serves a Kerong CU16 bus of boards
0 and 1 x 16 doors on ``socket://127.0.0.1:<bus>`` (the production driver talks to it unchanged) and
the wall's HTTP API (``simulators.wall.wall_router``: ``GET /sim/api/state``, ``POST
/sim/api/A/{board}/{channel}/{action}``) on 127.0.0.1:<http>, then prints one JSON line
``{"bus": "socket://...", "http": <port>}``. Two extra routes for the driver:

* ``GET /crash/quiet``: waits until no client is connected to the bus (every byte a killed service
  wrote has been handled, so the pulse counts are final), then answers like ``/sim/api/state``;
* ``POST /crash/reset``: every door closed, empty and unjammed (a new epoch, a new database).
  Pulse counters are never reset.

It exits when its stdin is closed (so it never outlives the driver) or on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI

from simulators.kerong_cu16 import run_lockboard_sim
from simulators.wall import wall_router

BOARDS = (0, 1)
DOORS = 16


async def main() -> None:
    running = await run_lockboard_sim(BOARDS, DOORS, "closed_is_1", "tcp:127.0.0.1:0")
    sim = running.sim
    app = FastAPI(title="crash-test wall")
    app.include_router(wall_router({"A": sim}))

    def clients() -> int | None:
        """Hosts connected to the bus (None if the transport no longer tells)."""
        connected = getattr(running.transport, "_clients", None)
        return None if connected is None else len(connected)

    @app.get("/crash/quiet")
    async def quiet() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        if clients() is None:
            await asyncio.sleep(0.1)  # cannot see the connections: give the last bytes time to arrive
        deadline = loop.time() + 3.0
        while clients() and loop.time() < deadline:
            await asyncio.sleep(0.002)
        return {"clients": clients() or 0, "banks": [{"bank": "A", **sim.snapshot()}]}

    @app.post("/crash/reset")
    async def reset() -> dict[str, Any]:
        for board in BOARDS:
            for channel in range(DOORS):
                sim.set_jammed(board, channel, False)
                sim.open_door(board, channel)
                sim.remove_item(board, channel)
                sim.close_door(board, channel)
        return {"banks": [{"bank": "A", **sim.snapshot()}]}

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if serving.done():
        serving.result()
    print(json.dumps({"bus": running.url, "http": port}), flush=True)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def stdin_readable() -> None:
        if not sys.stdin.buffer.raw.read(4096):  # EOF: the driver is gone
            stop.set()

    loop.add_reader(sys.stdin.fileno(), stdin_readable)
    try:
        await stop.wait()
    finally:
        loop.remove_reader(sys.stdin.fileno())
        server.should_exit = True
        await serving
        await running.close()
        sock.close()


if __name__ == "__main__":
    asyncio.run(main())
