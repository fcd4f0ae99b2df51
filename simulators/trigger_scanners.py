"""Wire-level simulators of scanners the host triggers: Honeywell, Zebra SSI, Grow GM65 (§3.2).

Each is a :class:`~simulators.line_scanner.LineScannerSimulator` (same pty/TCP endpoints, faults
``send_raw`` and ``unplug``, runner object with ``.url``, ``.sim``, ``scan()`` and ``close()``) whose
firmware answers the host's commands with the real bytes, built with the ``firmware_bridge`` codecs:

* :class:`HoneywellScannerSim`: ``16 54 0D`` / ``16 55 0D`` start and stop a scan (no reply);
  menu commands are echoed with ACK, ENQ (unknown setting) or NAK (out of range). It knows the
  Read Time-Out ``TRGSTO`` (ms, ``?`` queries it). Where the status character goes is a choice
  (``status_at_end``), as it is unverified on real scanners.
* :class:`SsiScannerSim`: an SE engine. Commands are ACKed (``04 D0 00 00 FF 2C``); START_DECODE while
  scanning is disabled is NAKed (denied). Raw lines until the host sets parameter 0xEE to packeted;
  then each code goes out as DECODE_DATA packets, one at a time, each resent with the retransmission
  bit when the host does not ACK it within ``ack_timeout`` seconds (up to ``retries`` times). With
  ``sleeps`` the engine ignores a command unless the wake byte ``00`` came first.
* :class:`Gm65ScannerSim`: zone-bit frames ``7E 00 ...`` (CRC or ``AB CD``) are answered
  ``02 00 00 LEN DATA CRC``; writing 01 to zone 0x0002 starts a scan after the reply; zone 0x00D0
  bit 7 switches AIM identifiers.

A person holding a code under the window is :meth:`~TriggerScannerSim.scan`. In trigger mode the
code is read only while a scan is on: held before the trigger, it waits under the window and is read
when the trigger comes. A scan ends at the first code read, on the stop command, or after the
read time-out (``read_timeout`` seconds) with nothing read. ``trigger_mode=False`` is presentation
mode: every code is read at once. AIM identifiers are prefixed when enabled.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from firmware_bridge import scanner_gm65 as gm65
from firmware_bridge import scanner_honeywell as honeywell
from firmware_bridge import scanner_ssi as ssi
from simulators._device_sim import frames
from simulators.line_scanner import (
    QR,
    LineScannerSimulator,
    RunningLineScannerSim,
    ScannerSimState,
    _suffix,
    serve_scanner,
)

log = logging.getLogger(__name__)


@dataclass
class TriggerSimState(ScannerSimState):
    trigger_mode: bool = True  # False: presentation mode, every code is read at once
    read_timeout: float = 5.0  # seconds a triggered scan lasts without a code
    triggered: bool = False
    triggers: int = 0  # scans started by the host
    timeouts: int = 0  # scans that ended without a code
    waiting: tuple[str, str | None, bytes | None] | None = None  # a code under the window, not read yet


class TriggerScannerSim(LineScannerSimulator):
    """What the three simulators share: the trigger state machine and command parsing.
    Subclasses provide ``_decode`` (a codec's host-side decode) and ``_handle(command)``."""

    NAME = "triggered scanner"

    def __init__(self, *, suffix: str | bytes = "cr", aim_ids: bool = False, trigger_mode: bool = True,
                 read_timeout: float = 5.0) -> None:
        super().__init__(suffix=suffix, aim_ids=aim_ids)
        self.state: TriggerSimState = TriggerSimState(suffix=_suffix(suffix), aim_ids=aim_ids,
                                                      trigger_mode=trigger_mode, read_timeout=read_timeout)
        self.commands: list[Any] = []  # every host command decoded, in order
        self._rx = bytearray()
        self._scan_timer: asyncio.TimerHandle | None = None

    # -- hand actions --------------------------------------------------------------------------

    def scan(self, text: str, symbology: str | None = None, suffix: str | bytes | None = None) -> bytes:
        """A person holds a code reading ``text`` under the window. Read at once when a scan is on
        (or in presentation mode); otherwise it waits there for the next trigger. Returns the bytes
        sent now (``b""`` when the code waits)."""
        raw_suffix = None if suffix is None else _suffix(suffix)
        if self.state.trigger_mode and not self.state.triggered:
            self.state.waiting = (text, symbology, raw_suffix)
            return b""
        self._stop_scan()
        return self._read_code(text, symbology, raw_suffix)

    def take_away(self) -> None:
        """The person takes the code away before it was read."""
        self.state.waiting = None

    # -- firmware --------------------------------------------------------------------------------

    def _read_code(self, text: str, symbology: str | None, suffix: bytes | None) -> bytes:
        """Send a code read (lines by default; the SSI engine overrides)."""
        return LineScannerSimulator.scan(self, text, symbology, suffix)

    def _start_scan(self) -> None:
        self.state.triggers += 1
        if self.state.waiting is not None:
            text, symbology, suffix = self.state.waiting
            self.state.waiting = None
            self.state.triggered = False
            self._read_code(text, symbology, suffix)
            return
        self.state.triggered = True
        self._cancel_scan_timer()
        self._scan_timer = asyncio.get_running_loop().call_later(self.state.read_timeout, self._scan_timed_out)

    def _scan_timed_out(self) -> None:
        self._scan_timer = None
        if self.state.triggered:
            self.state.triggered = False
            self.state.timeouts += 1
            log.info("%s: read time-out, nothing read", self.NAME)

    def _stop_scan(self) -> None:
        self.state.triggered = False
        self._cancel_scan_timer()

    def _cancel_scan_timer(self) -> None:
        if self._scan_timer is not None:
            self._scan_timer.cancel()
            self._scan_timer = None

    def _received(self, data: bytes) -> None:
        super()._received(data)
        if self.state.unplugged:
            return
        self._rx += data
        for command in frames(self._rx, self._decode):
            self.commands.append(command)
            self._handle(command)

    def _decode(self, buf: bytearray) -> tuple[int, Any]:
        raise NotImplementedError

    def _handle(self, command: Any) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        self._stop_scan()
        await super().close()


class HoneywellScannerSim(TriggerScannerSim):
    """A Honeywell scanner in serial trigger mode (Read Time-Out default 30 s, as on Xenon/Granit).
    ``status_at_end`` puts the menu reply's status after the storage character; ``echo_prefix``
    repeats ``SYN M CR`` in replies."""

    NAME = "honeywell scanner"

    def __init__(self, *, suffix: str | bytes = "cr", aim_ids: bool = False, trigger_mode: bool = True,
                 read_timeout: float = 30.0, status_at_end: bool = False, echo_prefix: bool = False) -> None:
        super().__init__(suffix=suffix, aim_ids=aim_ids, trigger_mode=trigger_mode, read_timeout=read_timeout)
        self.status_at_end = status_at_end
        self.echo_prefix = echo_prefix

    def _decode(self, buf: bytearray) -> tuple[int, Any]:
        return honeywell.decode_command(buf)

    def _handle(self, command: Any) -> None:
        if isinstance(command, honeywell.Trigger):
            if not self.state.trigger_mode:
                return  # presentation mode ignores serial triggers
            if command.on:
                self._start_scan()
            else:
                self._stop_scan()
            return
        reply = self._menu(command)
        self.send_raw(honeywell.encode_menu_reply(reply, status_at_end=self.status_at_end,
                                                  echo_prefix=self.echo_prefix))

    def _menu(self, command: honeywell.MenuCommand) -> honeywell.MenuReply:
        status = honeywell.MenuStatus.ACK
        data = command.data
        if command.setting != honeywell.READ_TIMEOUT_SETTING:
            status = honeywell.MenuStatus.ENQ
        elif data == "?":
            data = str(round(self.state.read_timeout * 1000))
        elif data.isdigit() and int(data) <= honeywell.READ_TIMEOUT_MAX_MS:
            self.state.read_timeout = int(data) / 1000
        else:
            status = honeywell.MenuStatus.NAK
        return honeywell.MenuReply(command.setting, data, status, command.storage)


@dataclass
class _Outgoing:
    packets: list[bytes]
    sent_times: int = 0  # transmissions of packets[0]


@dataclass
class SsiFaults:
    lost_acks: int = 0  # the next host ACKs never arrive
    corrupt_packets: int = 0  # the next DECODE_DATA transmissions carry a broken checksum


class SsiScannerSim(TriggerScannerSim):
    """A Zebra/Symbol SE engine speaking SSI. ``packeted``: start in packeted decode-data mode
    (default off: raw lines until the host sets parameter 0xEE). ``sleeps``: the engine sleeps when
    idle and needs the wake byte before a command. ``code_type`` is the barcode type of codes
    scanned without a symbology."""

    NAME = "zebra ssi engine"
    REVISION = "NBRPUAAM 5.00 SIM"
    _TYPE_BY_AIM = {**{aim: code for code, (_, aim) in reversed(list(ssi.CODE_TYPES.items())) if aim},
                    "]E0": 0x0B}  # EAN-13 rather than UPC-A for the shared identifier

    def __init__(self, *, suffix: str | bytes = "cr", aim_ids: bool = False, trigger_mode: bool = True,
                 read_timeout: float = 5.0, packeted: bool = False, sleeps: bool = False,
                 ack_timeout: float = 0.3, retries: int = 2, code_type: int = 0x1C) -> None:
        super().__init__(suffix=suffix, aim_ids=aim_ids, trigger_mode=trigger_mode, read_timeout=read_timeout)
        self.packeted = packeted
        self.sleeps = sleeps
        self.asleep = sleeps
        self.scanning_enabled = True
        self.ack_timeout = ack_timeout
        self.retries = retries
        self.code_type = code_type
        self.faults = SsiFaults()
        self.params: dict[int, int] = {}
        self.ignored_while_asleep = 0
        self.resends = 0
        self.abandoned = 0  # codes given up after ``retries`` resends without an ACK
        self._queue: list[_Outgoing] = []
        self._ack_timer: asyncio.TimerHandle | None = None

    def lose_acks(self, n: int = 1) -> None:
        """The next ``n`` ACKs from the host are lost on the wire (the engine resends)."""
        self.faults.lost_acks += n

    def corrupt_packets(self, n: int = 1) -> None:
        """The next ``n`` DECODE_DATA transmissions go out with a flipped checksum bit."""
        self.faults.corrupt_packets += n

    @property
    def awaiting_ack(self) -> bool:
        return bool(self._queue)

    def _read_code(self, text: str, symbology: str | None, suffix: bytes | None) -> bytes:
        if not self.packeted:
            return super()._read_code(text, symbology, suffix)
        code_type = self._TYPE_BY_AIM.get(symbology or "", self.code_type)
        data = text.encode("utf-8")
        if self.state.aim_ids:
            data = (symbology or QR).encode("ascii") + data
        self.state.scans += 1
        packets = ssi.decode_data_packets(data, code_type)
        self._queue.append(_Outgoing(packets))
        if len(self._queue) == 1:
            self._transmit()
        return b"".join(packets)

    def _transmit(self) -> None:
        if not self._queue:
            return
        out = self._queue[0]
        packet = out.packets[0]
        if out.sent_times:
            packet = self._with_retransmit_bit(packet)
            self.resends += 1
        out.sent_times += 1
        if self.faults.corrupt_packets:
            self.faults.corrupt_packets -= 1
            packet = packet[:-1] + bytes([packet[-1] ^ 0x01])
        self.send_raw(packet)
        self._cancel_ack_timer()
        self._ack_timer = asyncio.get_running_loop().call_later(self.ack_timeout, self._ack_timed_out)

    @staticmethod
    def _with_retransmit_bit(packet: bytes) -> bytes:
        _, decoded = ssi.decode(packet)
        assert decoded is not None
        return ssi.encode(ssi.Packet(decoded.opcode, decoded.source, decoded.status | ssi.Status.RETRANSMIT,
                                     decoded.data))

    def _ack_timed_out(self) -> None:
        self._ack_timer = None
        if not self._queue:
            return
        if self._queue[0].sent_times > self.retries:
            log.info("%s: no ACK after %d resends, packet given up", self.NAME, self.retries)
            self.abandoned += 1
            self._queue.pop(0)
        self._transmit()

    def _acked(self) -> None:
        if not self._queue:
            return
        self._cancel_ack_timer()
        out = self._queue[0]
        out.packets.pop(0)
        out.sent_times = 0
        if not out.packets:
            self._queue.pop(0)
        self._transmit()

    def _cancel_ack_timer(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None

    def _received(self, data: bytes) -> None:
        if self.asleep and not self.state.unplugged:
            if not data.startswith(ssi.WAKE):
                LineScannerSimulator._received(self, data)
                self.ignored_while_asleep += 1
                return
            self.asleep = False
        handled = len(self.commands)
        super()._received(data)
        idle = not self.state.triggered and not self._queue
        if self.sleeps and len(self.commands) > handled and idle and not data.endswith(ssi.WAKE):
            self.asleep = True  # back to sleep once idle after a command (unless woken again since)

    def _decode(self, buf: bytearray) -> tuple[int, Any]:
        return ssi.decode(buf)

    def _reply(self, packet: bytes) -> None:
        self.send_raw(packet)

    def _handle(self, packet: ssi.Packet) -> None:
        if packet.source != ssi.Source.HOST:
            return
        op = packet.opcode
        ack = ssi.ack(ssi.Source.DECODER)
        if op == ssi.Opcode.CMD_ACK:
            if self.faults.lost_acks:
                self.faults.lost_acks -= 1
                return
            self._acked()
        elif op == ssi.Opcode.CMD_NAK:
            if ssi.nak_cause(packet) == ssi.NakCause.RESEND and self._queue:
                self._cancel_ack_timer()
                self._transmit()
        elif op == ssi.Opcode.START_DECODE:
            if not self.scanning_enabled:
                self._reply(ssi.nak(ssi.NakCause.DENIED, ssi.Source.DECODER))
                return
            self._reply(ack)
            if self.state.trigger_mode:
                self._start_scan()
        elif op == ssi.Opcode.STOP_DECODE:
            self._reply(ack)
            self._stop_scan()
        elif op in (ssi.Opcode.SCAN_ENABLE, ssi.Opcode.SCAN_DISABLE):
            self.scanning_enabled = op == ssi.Opcode.SCAN_ENABLE
            self._reply(ack)
        elif op == ssi.Opcode.REQUEST_REVISION:
            self._reply(ssi.encode(ssi.Packet(ssi.Opcode.REPLY_REVISION, ssi.Source.DECODER, 0,
                                              self.REVISION.encode("ascii"))))
        elif op == ssi.Opcode.PARAM_SEND and len(packet.data) % 2 == 1:
            pairs = packet.data[1:]
            for i in range(0, len(pairs), 2):
                self.params[pairs[i]] = pairs[i + 1]
            if ssi.PARAM_DECODE_DATA_PACKET_FORMAT in self.params:
                self.packeted = self.params[ssi.PARAM_DECODE_DATA_PACKET_FORMAT] == ssi.PACKETED
            self._reply(ack)
        elif op in (ssi.Opcode.FLUSH_QUEUE, ssi.Opcode.BEEP, ssi.Opcode.LED_ON, ssi.Opcode.LED_OFF):
            self._reply(ack)
        else:
            self._reply(ssi.nak(ssi.NakCause.BAD_CONTEXT, ssi.Source.DECODER))

    async def close(self) -> None:
        self._cancel_ack_timer()
        self._queue.clear()
        await super().close()


class Gm65ScannerSim(TriggerScannerSim):
    """A Grow GM65 module in command trigger mode (single-read time default 5 s). Zone bits are a
    dict; only the trigger (0x0002) and AIM (0x00D0) zones change its behaviour."""

    NAME = "gm65 module"

    def __init__(self, *, suffix: str | bytes = "cr", aim_ids: bool = False, trigger_mode: bool = True,
                 read_timeout: float = 5.0) -> None:
        super().__init__(suffix=suffix, aim_ids=aim_ids, trigger_mode=trigger_mode, read_timeout=read_timeout)
        self.zones: dict[int, int] = {gm65.ZONE_AIM: gm65.AIM_BIT if aim_ids else 0}
        self.saves = 0

    def _decode(self, buf: bytearray) -> tuple[int, Any]:
        return gm65.decode_command(buf)

    def _handle(self, command: gm65.Command) -> None:
        if command.kind == gm65.FrameType.READ:
            count = command.data[0] or 1
            data = bytes(self.zones.get(command.address + i, 0) for i in range(count))
            self.send_raw(gm65.encode_reply(data))
            return
        if command.kind == gm65.FrameType.SAVE:
            self.saves += 1
            self.send_raw(gm65.encode_reply())
            return
        trigger = command.address == gm65.ZONE_TRIGGER and command.data[:1] == b"\x01"
        for i, value in enumerate(command.data):
            if command.address + i != gm65.ZONE_TRIGGER:
                self.zones[command.address + i] = value
        self.state.aim_ids = bool(self.zones.get(gm65.ZONE_AIM, 0) & gm65.AIM_BIT)
        self.send_raw(gm65.encode_reply())
        if trigger and self.state.trigger_mode:
            self._start_scan()  # "then the scan starts": after the reply


SIMULATORS: dict[str, type[TriggerScannerSim]] = {
    "honeywell": HoneywellScannerSim,
    "zebra-ssi": SsiScannerSim,
    "gm65": Gm65ScannerSim,
}


async def run_trigger_scanner_sim(protocol: str, transport: str = "pty", **options: Any) -> RunningLineScannerSim:
    """Start the simulator of ``protocol`` ("honeywell", "zebra-ssi", "gm65") on ``transport``
    ("pty", or "tcp", "tcp:PORT", "tcp:HOST:PORT"); ``options`` go to its constructor."""
    try:
        cls = SIMULATORS[protocol]
    except KeyError:
        raise ValueError(f"no trigger scanner simulator for {protocol!r}; known: {', '.join(SIMULATORS)}") from None
    return await serve_scanner(cls(**options), transport)
