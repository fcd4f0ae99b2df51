"""Scanners the host can trigger over a serial or USB-CDC link: Honeywell, Zebra SSI, Grow GM65 (§3.2).

Each is a :class:`~hal.scanner.CodeScanner`; :meth:`~hal.scanner.CodeScanner.trigger` starts a scan
and the code comes through ``read()`` like any other. Backends (``hal.scanner.BACKENDS``):

* ``"honeywell"`` :class:`HoneywellScanner`: codes are plain lines; trigger ``16 54 0D`` / ``16 55 0D``
  (no reply); menu commands answered with ACK/ENQ/NAK; optional Read Time-Out set at open. Bytes up
  to a status character (05/06/15) that comes before any line end are taken as a menu reply, so a
  code containing those control characters would be lost; printable codes are unaffected.
* ``"zebra-ssi"`` :class:`SsiScanner`: packeted mode only. Codes come as DECODE_DATA packets, each
  ACKed; START_DECODE/STOP_DECODE must be ACKed by the engine. Unpacketed (raw line) output is not
  accepted here, because a raw line and a packet cannot be told apart reliably on one stream (any
  printable first byte is a plausible LEN): at open the backend switches the engine to packeted
  decode data (parameter 0xEE, temporary), and bytes that are not packets are counted and dropped
  with a warning. An engine left in raw mode is served by the ``"serial-line"`` backend instead.
* ``"gm65"`` :class:`Gm65Scanner`: codes are plain lines; command frames ``7E 00 ...`` answered
  with ``02 00 00 LEN DATA CRC``; the trigger is checked against its reply. There is no documented
  stop command: ``trigger(False)`` does nothing and the scan ends after the module's single-read time.

How they work: one reader task (the pump) owns every byte the scanner sends. It splits them into
codes (queued for ``read()``) and replies (handed to the one command waiting for them), and answers
SSI DECODE_DATA with CMD_ACK at once. Commands only write, so a ``read()`` waiting in one task and a
``trigger()`` in another do not fight over the port. When the link fails, the pump records a
``DeviceIOError`` that every later ``read()`` and command raises; close and open to recover.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

from firmware_bridge import scanner_gm65 as gm65
from firmware_bridge import scanner_honeywell as honeywell
from firmware_bridge import scanner_lines
from firmware_bridge import scanner_ssi as ssi
from firmware_bridge.errors import LinkError, LinkOpenError, LinkTimeout
from firmware_bridge.link import SerialLink
from hal.errors import DeviceIOError, DeviceOpenError, DeviceTimeout
from hal.scanner import SUFFIXES, CodeScanner, ScannedCode

log = logging.getLogger(__name__)


class _TriggeredScanner(CodeScanner):
    """The pump, the code queue and one-command-at-a-time requests shared by the three backends.

    Subclasses must override ``_consume()`` (take what they can off ``self._buf``) and may override
    ``_setup()`` (commands sent at open), ``_stale()`` (the line went quiet with bytes left) and
    ``_trigger(on)``.
    """

    BACKEND: ClassVar[str] = ""

    def __init__(
        self,
        url: str,
        baudrate: int = 9600,
        *,
        suffix: str = "cr",
        inter_char_timeout: float = 0.1,
        fragment_timeout: float = 1.0,
        aim_ids: bool = False,
        command_timeout: float = 1.0,
        max_queued: int = 32,
        exclusive: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock=clock)
        if suffix not in SUFFIXES:
            raise ValueError(f"suffix must be one of {', '.join(SUFFIXES)}, not {suffix!r}")
        self.url = url
        self.suffix = suffix
        self.inter_char_timeout = inter_char_timeout
        self.fragment_timeout = fragment_timeout
        self.aim_ids = aim_ids
        self.command_timeout = command_timeout
        self.max_queued = max_queued
        self._link = SerialLink(url, baudrate, exclusive=exclusive)
        self._buf = bytearray()
        self._last_rx = 0.0
        self._codes: asyncio.Queue[ScannedCode | None] = asyncio.Queue()
        self._pump_task: asyncio.Task[None] | None = None
        self._failure: DeviceIOError | None = None
        self._pending: tuple[Callable[[Any], bool], asyncio.Future[Any]] | None = None
        self._command_lock = asyncio.Lock()

    def describe(self) -> dict[str, str]:
        return {"backend": self.BACKEND, "url": self.url, "suffix": self.suffix, "aim_ids": str(self.aim_ids)}

    # -- life ------------------------------------------------------------------------------------

    async def _open(self) -> None:
        self._buf.clear()
        self._failure = None
        self._codes = asyncio.Queue()
        try:
            await self._link.open()
        except LinkOpenError as err:
            raise DeviceOpenError(f"scanner: {err}") from err
        self._pump_task = asyncio.get_running_loop().create_task(self._pump(), name=f"scanner-pump {self.url}")
        try:
            await self._setup()
        except BaseException as err:
            await self._shutdown()
            if isinstance(err, DeviceIOError):
                raise DeviceOpenError(f"scanner {self.url}: set-up failed: {err}") from err
            raise

    async def _close(self) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        task, self._pump_task = self._pump_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        self._fail_pending(DeviceIOError(f"scanner {self.url} was closed"))
        self._codes.put_nowait(None)  # wake a read() waiting on the queue
        await self._link.close()

    async def _setup(self) -> None:
        """Commands to send once the link is open (raise ``DeviceOpenError`` for a refusal)."""

    # -- reading -----------------------------------------------------------------------------------

    async def _read(self, timeout: float | None) -> ScannedCode | None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            while not self._codes.empty():
                code = self._codes.get_nowait()
                if code is not None:
                    return code
            if self._failure is not None:
                raise self._failure
            if not self._is_open:
                raise DeviceIOError(f"scanner {self.url} was closed")
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            try:
                async with asyncio.timeout(remaining):
                    code = await self._codes.get()
            except TimeoutError:
                return None
            if code is not None:
                return code

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                quiet_at = self._last_rx + self._quiet_after() if self._buf else None
                wait = None if quiet_at is None else max(0.0, quiet_at - loop.time())
                chunk = await self._link.read(wait)
                if chunk:
                    self._buf += chunk
                    self._last_rx = loop.time()
                    await self._consume()
                elif quiet_at is not None and loop.time() >= quiet_at:
                    await self._stale()
        except LinkError as err:
            self._fail(DeviceIOError(f"scanner {self.url}: {err}"))
        except DeviceIOError as err:
            self._fail(err)

    def _quiet_after(self) -> float:
        return self.inter_char_timeout if self.suffix == "none" else self.fragment_timeout

    def _fail(self, err: DeviceIOError) -> None:
        log.warning("scanner %s failed: %s", self.url, err)
        self._failure = err
        self._fail_pending(err)
        self._codes.put_nowait(None)

    def _deliver(self, code: ScannedCode) -> None:
        if self._codes.qsize() >= self.max_queued:
            self._codes.get_nowait()
            log.warning("scanner %s: nobody is reading, the oldest queued code was dropped", self.url)
        self._codes.put_nowait(code)

    def _line_code(self, line: scanner_lines.ScanLine) -> ScannedCode:
        text = line.text
        if text is None:
            log.warning("scanner %s: a code of %d bytes that are not UTF-8", self.url, len(line.data))
            return self._code(line.data.decode("utf-8", "backslashreplace"), line.symbology, "undecodable",
                              len(line.data))
        return self._code(text, line.symbology, raw_length=len(line.data))

    def _take_line(self) -> bool:
        """Take one plain code line off the buffer; False when it needs more bytes."""
        consumed, line = scanner_lines.decode(self._buf, aim_ids=self.aim_ids)
        if not consumed:
            return False
        del self._buf[:consumed]
        if line is not None:
            self._deliver(self._line_code(line))
        return True

    def _stale_line(self) -> None:
        if self.suffix == "none":
            consumed, line = scanner_lines.decode(self._buf, aim_ids=self.aim_ids, flush=True)
            del self._buf[:consumed]
            if line is not None:
                self._deliver(self._line_code(line))
        else:
            log.warning("scanner %s: dropped %d bytes without a suffix", self.url, len(self._buf))
            self._buf.clear()

    async def _consume(self) -> None:
        raise NotImplementedError

    async def _stale(self) -> None:
        self._stale_line()

    # -- commands ----------------------------------------------------------------------------------

    async def _write(self, data: bytes) -> None:
        try:
            await self._link.write(data)
        except LinkTimeout as err:
            raise DeviceTimeout(f"scanner {self.url}: {err}") from err
        except LinkError as err:
            raise DeviceIOError(f"scanner {self.url}: {err}") from err

    async def _request(self, data: bytes, accepts: Callable[[Any], bool], what: str) -> Any:
        """Write ``data`` and wait for the first received frame that ``accepts`` takes.
        Raises ``DeviceTimeout`` after ``command_timeout`` seconds."""
        async with self._command_lock:
            if self._failure is not None:
                raise self._failure
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending = (accepts, future)
            try:
                await self._write(data)
                try:
                    async with asyncio.timeout(self.command_timeout):
                        return await future
                except TimeoutError as err:
                    raise DeviceTimeout(f"scanner {self.url}: no answer to {what} "
                                        f"within {self.command_timeout} s") from err
            finally:
                self._pending = None

    def _answer(self, frame: Any) -> bool:
        """Hand a received reply to the waiting command; False when nobody waits for it."""
        if self._pending is None:
            return False
        accepts, future = self._pending
        if future.done() or not accepts(frame):
            return False
        future.set_result(frame)
        return True

    def _fail_pending(self, err: DeviceIOError) -> None:
        if self._pending is not None and not self._pending[1].done():
            self._pending[1].set_exception(err)

    def _require_open(self) -> None:
        if not self._is_open:
            raise RuntimeError("scanner is not open")


class HoneywellScanner(_TriggeredScanner):
    """A Honeywell scanner (Xenon, Granit, N3680, HF800...) in serial or USB-CDC mode, set to
    manual/serial trigger mode so :meth:`trigger` works (in presentation mode it scans by itself,
    and trigger commands are ignored by the scanner).

    ``read_timeout``: seconds the scanner keeps scanning after a trigger (0..300, the menu setting
    TRGSTO, sent to RAM at open); None leaves the scanner's own setting. Other options as
    :class:`~hal.scanner.SerialLineScanner`, plus ``command_timeout`` (seconds to wait for a menu reply).
    """

    BACKEND = "honeywell"

    def __init__(self, url: str, baudrate: int = 9600, *, read_timeout: float | None = None, **options: Any) -> None:
        if read_timeout is not None:
            honeywell.read_timeout_command(read_timeout)  # ValueError now, not at open
        super().__init__(url, baudrate, **options)
        self.read_timeout = read_timeout

    def describe(self) -> dict[str, str]:
        info = super().describe()
        if self.read_timeout is not None:
            info["read_timeout"] = f"{self.read_timeout:g} s"
        return info

    async def _setup(self) -> None:
        if self.read_timeout is None:
            return
        reply = await self._menu(honeywell.READ_TIMEOUT_SETTING, round(self.read_timeout * 1000))
        if not reply.ok:
            raise DeviceOpenError(f"scanner {self.url} refused the read time-out {self.read_timeout:g} s: "
                                  f"{reply.status.name} ({reply.status.meaning})")

    async def menu(self, setting: str, data: str | int = "", *, permanent: bool = False) -> honeywell.MenuReply:
        """Send one menu command (``setting`` is tag + subtag, e.g. "TRGSTO") and return the
        scanner's reply; a refusal is a reply whose status is ENQ or NAK. Raises ``DeviceTimeout``
        when no reply comes within ``command_timeout`` seconds."""
        self._require_open()
        return await self._menu(setting, data, permanent=permanent)

    async def _menu(self, setting: str, data: str | int = "", *, permanent: bool = False) -> honeywell.MenuReply:
        frame = honeywell.menu_command(setting, data, permanent=permanent)
        return await self._request(
            frame, lambda r: isinstance(r, honeywell.MenuReply) and r.setting in (setting, ""), f"menu {setting}")

    async def _trigger(self, on: bool) -> None:
        await self._write(honeywell.TRIGGER_ON if on else honeywell.TRIGGER_OFF)

    def _reply_first(self) -> bool:
        """A status character comes before any line end: the buffer starts with a menu reply."""
        status_at = next((i for i, b in enumerate(self._buf) if b in (0x05, 0x06, 0x15)), -1)
        if status_at < 0:
            return False
        ends = [i for i in (self._buf.find(b"\r"), self._buf.find(b"\n")) if i >= 0]
        return not ends or status_at < min(ends)

    async def _consume(self) -> None:
        while self._buf:
            if self._buf.startswith(honeywell.MENU_PREFIX):
                del self._buf[:len(honeywell.MENU_PREFIX)]  # an echoed menu prefix
                continue
            if self._reply_first():
                consumed, reply = honeywell.decode_menu_reply(self._buf)
                if not consumed:
                    return
                del self._buf[:consumed]
                if reply is not None and not self._answer(reply):
                    log.info("scanner %s: a menu reply nobody asked for (%s)", self.url, reply.setting)
                continue
            if not self._take_line():
                return

    async def _stale(self) -> None:
        if self._reply_first():
            consumed, reply = honeywell.decode_menu_reply(self._buf, flush=True)
            del self._buf[:max(consumed, 1)]
            if reply is not None:
                self._answer(reply)
            return
        self._stale_line()


class SsiScanner(_TriggeredScanner):
    """A Zebra/Symbol scan engine speaking SSI, in packeted mode.

    ``wake``: send the wake byte ``00`` and wait ``wake_delay`` seconds before each command (for
    engines allowed to sleep). ``set_packeted``: at open, switch the engine to packeted decode data
    (temporary parameter 0xEE = 1) and require its ACK. ``duplicate_window``: seconds within which a
    retransmitted DECODE_DATA identical to the last one is taken as a resend after a lost ACK, not a
    new scan. ``aim_ids``: the engine is set to prefix AIM identifiers to the data; otherwise the
    symbology is derived from the packet's barcode type (``scanner_ssi.CODE_TYPES``).
    ``fragment_timeout``: seconds of silence after which an incomplete packet is given up byte by byte.
    """

    BACKEND = "zebra-ssi"

    def __init__(
        self,
        url: str,
        baudrate: int = 9600,
        *,
        wake: bool = False,
        wake_delay: float = 0.005,
        set_packeted: bool = True,
        duplicate_window: float = 2.0,
        aim_ids: bool = False,
        command_timeout: float = 1.0,
        fragment_timeout: float = 0.5,
        max_queued: int = 32,
        exclusive: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(url, baudrate, aim_ids=aim_ids, command_timeout=command_timeout,
                         fragment_timeout=fragment_timeout, max_queued=max_queued, exclusive=exclusive, clock=clock)
        self.wake = wake
        self.wake_delay = wake_delay
        self.set_packeted = set_packeted
        self.duplicate_window = duplicate_window
        self.skipped_bytes = 0
        self._partial: tuple[int, bytearray] | None = None
        self._last_packet: tuple[int, bytes] | None = None
        self._last_packet_at = 0.0
        self._warned_skips = False

    def describe(self) -> dict[str, str]:
        return {"backend": self.BACKEND, "url": self.url, "wake": str(self.wake), "aim_ids": str(self.aim_ids)}

    async def _setup(self) -> None:
        self._partial, self._last_packet, self.skipped_bytes, self._warned_skips = None, None, 0, False
        if self.set_packeted:
            reply = await self._command(ssi.param_send({ssi.PARAM_DECODE_DATA_PACKET_FORMAT: ssi.PACKETED}),
                                        "PARAM_SEND (packeted decode data)")
            if reply.opcode != ssi.Opcode.CMD_ACK:
                raise DeviceOpenError(f"scanner {self.url} refused packeted decode data: NAK {ssi.nak_cause(reply)!r}")

    async def _command(self, packet: bytes, what: str) -> ssi.Packet:
        if self.wake:
            await self._write(ssi.WAKE)
            await asyncio.sleep(self.wake_delay)
        return await self._request(
            packet, lambda p: isinstance(p, ssi.Packet) and p.opcode in (ssi.Opcode.CMD_ACK, ssi.Opcode.CMD_NAK), what)

    async def _trigger(self, on: bool) -> None:
        name = "START_DECODE" if on else "STOP_DECODE"
        reply = await self._command(ssi.START_DECODE if on else ssi.STOP_DECODE, name)
        if reply.opcode != ssi.Opcode.CMD_ACK:
            raise DeviceIOError(f"scanner {self.url} refused {name}: NAK {ssi.nak_cause(reply)!r}")

    async def request_revision(self) -> str:
        """The engine's software revision string (REQUEST_REVISION -> REPLY_REVISION)."""
        self._require_open()
        if self.wake:
            await self._write(ssi.WAKE)
            await asyncio.sleep(self.wake_delay)
        reply = await self._request(
            ssi.REQUEST_REVISION,
            lambda p: isinstance(p, ssi.Packet) and p.opcode in (ssi.Opcode.REPLY_REVISION, ssi.Opcode.CMD_NAK),
            "REQUEST_REVISION")
        if reply.opcode != ssi.Opcode.REPLY_REVISION:
            raise DeviceIOError(f"scanner {self.url} refused REQUEST_REVISION: NAK {ssi.nak_cause(reply)!r}")
        return reply.data.decode("ascii", "replace").strip()

    async def _consume(self) -> None:
        while self._buf:
            consumed, packet = ssi.decode(self._buf)
            if not consumed:
                return
            del self._buf[:consumed]
            if packet is None:
                self._skip(consumed)
                continue
            if packet.source != ssi.Source.DECODER:
                continue
            if packet.opcode == ssi.Opcode.DECODE_DATA:
                await self._on_decode_data(packet)
            elif not self._answer(packet):
                log.debug("scanner %s: unsolicited %r", self.url, packet)

    def _skip(self, n: int) -> None:
        self.skipped_bytes += n
        if self.skipped_bytes >= 16 and not self._warned_skips:
            self._warned_skips = True
            log.warning("scanner %s: %d bytes that are not SSI packets; is the engine set to packeted "
                        "decode data?", self.url, self.skipped_bytes)

    async def _stale(self) -> None:
        self._skip(1)
        del self._buf[:1]
        await self._consume()

    async def _on_decode_data(self, packet: ssi.Packet) -> None:
        await self._write(ssi.CMD_ACK)
        decoded = ssi.decode_data(packet)
        if decoded is None:
            return
        now = asyncio.get_running_loop().time()
        key = (packet.status & ~ssi.Status.RETRANSMIT, packet.data)
        if (decoded.retransmitted and key == self._last_packet
                and now - self._last_packet_at < self.duplicate_window):
            log.info("scanner %s: a resent DECODE_DATA packet was already taken", self.url)
            return
        self._last_packet, self._last_packet_at = key, now
        if self._partial is None:
            self._partial = (decoded.code_type, bytearray())
        self._partial[1].extend(decoded.data)
        if decoded.continued and len(self._partial[1]) <= scanner_lines.MAX_LINE:
            return
        code_type, data = self._partial
        self._partial = None
        symbology = ssi.CODE_TYPES.get(code_type, ("", None))[1]
        if self.aim_ids and data[:1] == b"]" and len(data) > scanner_lines.AIM_LENGTH:
            symbology = data[:scanner_lines.AIM_LENGTH].decode("ascii", "replace")
            data = data[scanner_lines.AIM_LENGTH:]
        if symbology is None:
            log.info("scanner %s: barcode type 0x%02X has no AIM identifier here", self.url, code_type)
        self._deliver(self._line_code(scanner_lines.ScanLine(bytes(data), symbology)))


class Gm65Scanner(_TriggeredScanner):
    """A Grow GM65/GM805/GM812 module on a UART or USB-CDC, set to command trigger mode.

    ``set_aim``: at open, switch AIM identifiers on or off to match ``aim_ids`` (a zone-bit write to
    RAM; nothing is saved to flash). Other options as :class:`~hal.scanner.SerialLineScanner`, plus
    ``command_timeout`` (seconds to wait for a command's reply).
    """

    BACKEND = "gm65"

    def __init__(self, url: str, baudrate: int = 9600, *, set_aim: bool = False, **options: Any) -> None:
        super().__init__(url, baudrate, **options)
        self.set_aim = set_aim

    async def _setup(self) -> None:
        if self.set_aim:
            reply = await self._command(gm65.AIM_ON if self.aim_ids else gm65.AIM_OFF, "AIM id setting")
            if not reply.ok:
                raise DeviceOpenError(f"scanner {self.url} refused the AIM id setting (reply {reply.data.hex()})")

    async def command(self, frame: bytes) -> gm65.Reply:
        """Send one command frame (``scanner_gm65.write(...)``, ``read(...)``, ``SAVE``) and return
        the module's reply. Raises ``DeviceTimeout`` when none comes within ``command_timeout`` s."""
        self._require_open()
        return await self._command(frame, "command")

    async def _command(self, frame: bytes, what: str) -> gm65.Reply:
        return await self._request(frame, lambda r: isinstance(r, gm65.Reply), what)

    async def _trigger(self, on: bool) -> None:
        if not on:
            log.debug("scanner %s: the GM65 has no stop command; the scan ends by itself", self.url)
            return
        reply = await self._command(gm65.TRIGGER, "the trigger command")
        if not reply.ok:
            raise DeviceIOError(f"scanner {self.url} refused the trigger command (reply {reply.data.hex()})")

    async def _consume(self) -> None:
        while self._buf:
            if self._buf[0] == gm65.REPLY_HEAD[0]:
                consumed, reply = gm65.decode_reply(self._buf)
                if not consumed:
                    return
                if reply is not None:
                    del self._buf[:consumed]
                    if not self._answer(reply):
                        log.info("scanner %s: a reply nobody asked for", self.url)
                    continue
            if not self._take_line():
                return
