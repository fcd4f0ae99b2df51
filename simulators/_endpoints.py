"""Where a simulated serial device meets the code under test: a pty, or a TCP server.

A simulator hands an endpoint ``connect(write, name)``. For each host connection (a pty is one
connection for its whole life) the endpoint calls it and feeds the returned :class:`Connection`
every byte the host sends; ``connect`` may return None to refuse the host (an unplugged device).
``write(data)`` returns False when the bytes could not be sent. Devices that speak first (a
scanner) also use :meth:`write` on the endpoint itself.

* :class:`PtyEndpoint`: the simulator drives the master side; the host opens :attr:`url`, the slave
  path, with pyserial. The slave stays open here too, so the master never sees EIO between hosts.
* :class:`TcpEndpoint`: hosts open ``socket://HOST:PORT`` (:attr:`url`); several in turn or at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tty
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

Write = Callable[[bytes], bool]


class Connection(Protocol):
    def feed(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


Connect = Callable[[Write, str], Connection | None]


class PtyEndpoint:
    def __init__(self, name: str, connect: Connect) -> None:
        self.name = name
        self.url = ""
        self._connect = connect
        self._master = -1
        self._slave = -1
        self._connection: Connection | None = None

    async def start(self) -> None:
        master, slave = os.openpty()
        try:
            tty.setraw(master)
            tty.setraw(slave)
            os.set_blocking(master, False)
            self.url = os.ttyname(slave)
        except OSError:
            os.close(master)
            os.close(slave)
            raise
        self._master, self._slave = master, slave
        self._connection = self._connect(self.write, f"pty {self.url}")
        asyncio.get_running_loop().add_reader(master, self._readable)
        log.info("%s simulator on %s", self.name, self.url)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            log.warning("pty %s: %s", self.url, err)
            return
        if data and self._connection is not None:
            self._connection.feed(data)

    def write(self, data: bytes) -> bool:
        if self._master < 0:
            return False
        try:
            written = os.write(self._master, data)
        except OSError as err:
            log.warning("pty %s: %s", self.url, err)
            return False
        if written != len(data):
            log.warning("pty %s: wrote only %d of %d bytes", self.url, written, len(data))
        return written == len(data)

    def unplug(self) -> None:
        """The cable is pulled: the pty goes away under the host."""
        if self._master < 0:
            return
        asyncio.get_running_loop().remove_reader(self._master)
        os.close(self._master)
        os.close(self._slave)
        self._master = self._slave = -1

    async def close(self) -> None:
        self.unplug()
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()


class TcpEndpoint:
    def __init__(self, name: str, connect: Connect, host: str = "127.0.0.1", port: int = 0) -> None:
        self.name = name
        self.host = host
        self.port = port
        self._connect = connect
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("%s simulator on %s", self.name, self.url)

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")

        def write(data: bytes) -> bool:
            if writer.is_closing():
                return False
            writer.write(data)
            return True

        connection = self._connect(write, f"tcp {peer}")
        if connection is None:
            writer.close()
            return
        self._clients[task] = writer
        try:
            while data := await reader.read(4096):
                connection.feed(data)
        except (ConnectionError, OSError) as err:
            log.info("tcp %s: %s", peer, err)
        finally:
            await connection.close()
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            self._clients.pop(task, None)

    def write(self, data: bytes) -> bool:
        """To every connected host (a device that speaks first)."""
        sent = False
        for writer in self._clients.values():
            if not writer.is_closing():
                writer.write(data)
                sent = True
        return sent

    def unplug(self) -> None:
        """The cable is pulled: every host's connection drops."""
        for writer in self._clients.values():
            writer.close()

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # End each client's handler through EOF, not cancel(): asyncio's stream server logs a
        # cancelled handler task as an error.
        clients = dict(self._clients)
        for writer in clients.values():
            writer.close()
        if clients:
            _, stuck = await asyncio.wait(clients, timeout=2.0)
            for task in stuck:
                task.cancel()
        await self._server.wait_closed()
        self._server = None
