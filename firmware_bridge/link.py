"""An async byte link over anything pyserial's URL machinery opens.

``SerialLink("socket://127.0.0.1:7001")``, ``SerialLink("/dev/serial/by-id/...")`` and
``SerialLink("spy:///dev/ttyUSB0?file=wire.log")`` are the same class; the URL is configuration.
Opening goes through ``serial_asyncio_fast.open_serial_connection(url=..., baudrate=...)``, which
needs a real file descriptor or a TCP socket: ``loop://`` does not work (use a pty in tests).

The link knows nothing about frames. Silence on the line is not an error here (``read`` returns
``b""``); deciding that a reply is missing is the bus's job.
"""

from __future__ import annotations

import asyncio
import logging
import select
from typing import Any

import serial
import serial_asyncio_fast

from firmware_bridge.errors import LinkError, LinkOpenError, LinkTimeout

log = logging.getLogger(__name__)

_LINK_FAILURES = (serial.SerialException, OSError, RuntimeError)

#: long writes are handed to the transport this many bytes at a time, each when the port is writable
WRITE_CHUNK = 1024


class SerialLink:
    """One open serial port (or TCP socket standing in for one). Explicit ``open()``/``close()``.

    ``open_timeout`` and ``write_timeout`` are in seconds. ``exclusive`` takes a POSIX lock on a
    device path so a second process cannot open the same bus (ignored for ``socket://``).
    Extra keyword arguments go to ``serial.serial_for_url`` (``bytesize``, ``parity``, ...).
    """

    def __init__(
        self,
        url: str,
        baudrate: int = 19200,
        *,
        exclusive: bool = True,
        open_timeout: float = 5.0,
        write_timeout: float = 1.0,
        **serial_options: Any,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self.exclusive = exclusive
        self.open_timeout = open_timeout
        self.write_timeout = write_timeout
        self._serial_options = serial_options
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        #: loop time of the last chunk received, or None before the first one
        self.last_rx: float | None = None

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<SerialLink {self.url} {self.baudrate} baud {state}>"

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    async def open(self) -> None:
        """Open the port. Raises ``LinkOpenError``. Opening an open link does nothing."""
        if self.is_open:
            return
        options = dict(self._serial_options)
        if self.exclusive and not self.url.startswith("socket://"):
            options.setdefault("exclusive", True)
        try:
            async with asyncio.timeout(self.open_timeout):
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=self.url, baudrate=self.baudrate, **options
                )
        except (serial.SerialException, OSError, ValueError) as err:  # TimeoutError is an OSError
            raise LinkOpenError(f"cannot open {self.url}: {err or type(err).__name__}") from err
        self._reader, self._writer = reader, writer
        log.debug("opened %s at %d baud", self.url, self.baudrate)

    async def close(self) -> None:
        """Close the port and wait until it is released. Closing a closed link does nothing."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is None:
            return
        writer.close()
        try:
            async with asyncio.timeout(2.0):
                await writer.wait_closed()
        except (*_LINK_FAILURES, TimeoutError) as err:
            log.debug("closing %s: %r", self.url, err)
        log.debug("closed %s", self.url)

    async def __aenter__(self) -> SerialLink:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _require_open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            raise LinkError(f"{self.url} is not open")
        return self._reader, self._writer

    def out_waiting(self) -> int | None:
        """Bytes the OS still holds for the wire (a tty's output queue), or None when the link cannot
        tell (``socket://``) or is closed."""
        try:
            return self._writer.transport.serial.out_waiting  # type: ignore[union-attr]
        except Exception:  # no such attribute on this transport, or the ioctl failed
            return None

    async def write(self, data: bytes) -> None:
        """Hand ``data`` to the port and wait until the OS has taken it (not until it is on the wire).

        pyserial-asyncio-fast puts the port in non-blocking mode (``write_timeout = 0``), and in that
        mode pyserial 3.5 retries a write the OS refuses (EAGAIN, a full output buffer) in a busy
        loop: the whole event loop would freeze for as long as the device is slower than we are (a
        printer taking a raster, a pty nobody reads). So data goes in chunks of ``WRITE_CHUNK``,
        each handed over only when the port is writable, which makes the first ``os.write`` take
        at least one byte; the transport keeps the rest and writes it when the port is ready.
        ``write_timeout`` bounds each wait, so a device that stops taking data raises
        ``LinkTimeout`` instead of hanging.
        """
        reader, writer = self._require_open()
        if writer.transport.is_closing() or reader.at_eof():
            raise LinkError(f"{self.url} was closed")
        loop = asyncio.get_running_loop()
        try:
            for start in range(0, max(len(data), 1), WRITE_CHUNK):
                deadline = loop.time() + self.write_timeout
                while writer.transport.get_write_buffer_size() or not self._writable(writer):
                    if loop.time() > deadline:
                        raise LinkTimeout(f"{self.url} took no data for {self.write_timeout} s")
                    await asyncio.sleep(0.002)
                writer.write(data[start:start + WRITE_CHUNK])
            async with asyncio.timeout(self.write_timeout):
                await writer.drain()
        except TimeoutError as err:
            if isinstance(err, LinkTimeout):
                raise
            raise LinkTimeout(f"write to {self.url} did not complete in {self.write_timeout} s") from err
        except _LINK_FAILURES as err:
            raise LinkError(f"write to {self.url} failed: {err}") from err

    @staticmethod
    def _writable(writer: asyncio.StreamWriter) -> bool:
        """True when the OS would take at least one byte now."""
        try:
            fd = writer.transport.serial.fileno()  # type: ignore[attr-defined]
        except Exception:  # a transport without a file descriptor: let the transport cope
            return True
        return bool(select.select([], [fd], [], 0)[1])

    async def read(self, timeout: float | None, max_bytes: int = 4096) -> bytes:
        """Up to ``max_bytes`` as soon as at least one byte is there.

        ``timeout`` in seconds (None waits forever); returns ``b""`` when nothing arrived in time.
        Raises ``LinkError`` when the port is gone or the peer closed the connection.
        """
        reader, _ = self._require_open()
        try:
            async with asyncio.timeout(timeout):
                data = await reader.read(max_bytes)
        except TimeoutError:
            return b""
        except _LINK_FAILURES as err:
            raise LinkError(f"read from {self.url} failed: {err}") from err
        if not data:
            raise LinkError(f"{self.url} was closed by the other end")
        self.last_rx = asyncio.get_running_loop().time()
        return data

    async def discard_input(self) -> bytes:
        """Remove and return every byte that has already arrived, without waiting for more."""
        self._require_open()
        # Two loop turns: the first lets the selector see a readable fd, the second runs its callback.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        chunks = []
        while data := await self.read(timeout=0):
            chunks.append(data)
        return b"".join(chunks)
