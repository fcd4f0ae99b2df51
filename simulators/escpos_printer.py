"""Wire-level simulator of an ESC/POS receipt printer (hardware-protocols.md §4.1-4.3, §4.5).

It reads the byte stream a host sends, over a pty or TCP (``simulators._endpoints``), with the
``firmware_bridge.escpos`` decoder, and turns it into paper: :attr:`EscPosPrinterSimulator.jobs`,
one :class:`PrintedJob` per cut, each a list of text lines (decoded from GB18030 in Chinese mode,
code page 437 outside it) and images (``GS v 0`` rasters as mode "1" PIL images; bands that follow
each other are joined into one image). A job not cut yet is :attr:`~EscPosPrinterSimulator.current`.

It answers ``DLE EOT n`` with status bytes built from its state (:class:`EscPosSimState`): paper
ok / near end / out, cover open, offline, cutter error, unrecoverable error, head too hot. Like a
real printer it answers real-time requests as the bytes arrive, even inside raster data
(``realtime_in_data``), which is why a driver must throw stale input away before asking; and it
answers while offline. While it cannot print (paper out, cover open, offline, an error), lines,
images and cuts that arrive are lost and counted in :attr:`EscPosSimState.lost_items`.

Native codes: a Code 128 (``GS k 73``, with the height, module and HRI of ``GS h`` / ``GS w`` /
``GS H``) and a QR code (``GS ( k`` model 2: module size, error correction, store, print) are
drawn into the paper as an image :attr:`width_dots` wide, placed by ``ESC a``, and their content
is recorded in :attr:`EscPosPrinterSimulator.barcodes` and :attr:`PrintedJob.barcodes` as
``(kind, content)``, kind "code128" or "qr". Like a real printer it skips a code wider than the
paper or data it cannot encode (counted in :attr:`EscPosSimState.refused_codes`). The bars are
drawn by zxing-cpp from the decoded content (see ``escpos.code128_picture``), the width check uses
the code sets the host sent. QR data is read as UTF-8 (bytes that are not stay bytes).

Chinese mode: ``FS &`` / ``FS .`` switch it; ``boot_chinese`` (the default, like most printers sold
in China) starts in it and ``ESC @`` returns to it, so python-escpos's bare GB18030 text prints too.

Faults: :meth:`~EscPosPrinterSimulator.drop_status_replies`, ``garbage_before_status``,
``delay_status_replies``, ``unsupported_status`` (a model without a near-end sensor never answers
``DLE EOT 4``), and :meth:`~EscPosPrinterSimulator.unplug`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from firmware_bridge import escpos
from firmware_bridge.escpos import Command, Op
from simulators._device_sim import RunningSim, Session, StatusReplySim, frames, serve_transport
from simulators._endpoints import PtyEndpoint, TcpEndpoint, Write

log = logging.getLogger(__name__)

PAPER = ("ok", "near_end", "out")


@dataclass
class EscPosSimState:
    """The printer as a person sees it. ``offline``: taken offline by other means than the causes
    below (a model that goes offline while the feed button is held). ``boot_chinese``: the mode after
    power-up and ``ESC @``. ``unsupported_status``: ``DLE EOT n`` requests it never answers."""

    paper: str = "ok"
    cover_open: bool = False
    offline: bool = False
    cutter_error: bool = False
    unrecoverable_error: bool = False
    head_overheat: bool = False
    boot_chinese: bool = True
    realtime_in_data: bool = True
    unsupported_status: set[int] = field(default_factory=set)
    unplugged: bool = False
    lost_items: int = 0
    status_requests: int = 0
    refused_codes: int = 0  # barcodes and QR codes not printed: too wide, bad data, unsupported kind

    @property
    def can_print(self) -> bool:
        return not (self.paper == "out" or self.cover_open or self.offline or self.cutter_error
                    or self.unrecoverable_error or self.head_overheat)


@dataclass
class PrintedJob:
    """Paper between two cuts: ``items`` are text lines (str) and images (rasters, and native codes
    as drawn), top to bottom. ``barcodes``: the native codes printed, ``(kind, content)``."""

    items: list[str | Image.Image] = field(default_factory=list)
    cut: str | None = None  # "full", "partial", or None while not cut
    feed_lines: int = 0
    barcodes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return [item for item in self.items if isinstance(item, str)]

    @property
    def images(self) -> list[Image.Image]:
        return [item for item in self.items if not isinstance(item, str)]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def paper(self, *, margin: int = 16, gap: int = 8) -> Image.Image:
        """The images of this job stacked top to bottom (left-aligned, ``gap`` dots apart) inside a
        white ``margin``: the paper a person would hold up to a scanner (text lines are not drawn).
        The margin stands for the unprintable edge of real paper: codes need a quiet zone."""
        images = self.images
        width = max((image.width for image in images), default=0) + 2 * margin
        height = sum(image.height for image in images) + gap * max(len(images) - 1, 0) + 2 * margin
        sheet = Image.new("1", (width, height), 1)
        y = margin
        for image in images:
            sheet.paste(image, (margin, y))
            y += image.height + gap
        return sheet


class _Session(Session):
    """One connected host; :attr:`tail` keeps its last bytes, in case a DLE EOT n is split between
    two reads."""

    tail = b""


class EscPosPrinterSimulator(StatusReplySim):
    """A simulated ESC/POS printer. ``paper``: "ok", "near_end" or "out"."""

    NAME = "ESC/POS printer"
    SESSION = _Session
    GARBAGE = b"\xff\x00"

    def __init__(self, *, paper: str = "ok", boot_chinese: bool = True, realtime_in_data: bool = True,
                 unsupported_status: set[int] | frozenset[int] = frozenset(), width_dots: int = 576) -> None:
        if paper not in PAPER:
            raise ValueError(f"paper must be one of {PAPER}, not {paper!r}")
        if width_dots < 8:
            raise ValueError(f"width_dots must be at least 8, not {width_dots}")
        super().__init__()
        self.width_dots = width_dots  # printable width: native codes are placed and checked against it
        self.barcodes: list[tuple[str, str]] = []
        self.state = EscPosSimState(paper=paper, boot_chinese=boot_chinese, realtime_in_data=realtime_in_data,
                                    unsupported_status=set(unsupported_status))
        self.jobs: list[PrintedJob] = []
        self.current = PrintedJob()
        self.received = bytearray()
        self.commands: Counter[Op] = Counter()
        self._chinese = boot_chinese
        self._line = ""
        self._line_started = False
        self._raster_open = False  # the last command was a raster: the next band continues the image
        self._reset_code_settings()

    def _reset_code_settings(self) -> None:
        """Power-up and ``ESC @`` values (Epson defaults: bars 162 dots high, module 3, no HRI; QR
        module 3, level L)."""
        self._align = escpos.Align.LEFT
        self._bar_height, self._bar_module, self._hri = 162, 3, escpos.Hri.NONE
        self._qr_model, self._qr_module, self._qr_ec, self._qr_data = 0x32, 3, "L", b""

    # -- what a person does ----------------------------------------------------------------------

    def set_paper(self, paper: str) -> None:
        """"ok" (a fresh roll), "near_end" or "out"."""
        if paper not in PAPER:
            raise ValueError(f"paper must be one of {PAPER}, not {paper!r}")
        self.state.paper = paper

    def open_cover(self) -> None:
        self.state.cover_open = True

    def close_cover(self) -> None:
        self.state.cover_open = False

    def set_offline(self, offline: bool = True) -> None:
        self.state.offline = offline

    def set_error(self, *, cutter: bool | None = None, unrecoverable: bool | None = None,
                  head_overheat: bool | None = None) -> None:
        if cutter is not None:
            self.state.cutter_error = cutter
        if unrecoverable is not None:
            self.state.unrecoverable_error = unrecoverable
        if head_overheat is not None:
            self.state.head_overheat = head_overheat

    # -- status ----------------------------------------------------------------------------------

    def status_flags(self, n: int) -> escpos.StatusByte:
        s = self.state
        errors = s.cutter_error or s.unrecoverable_error or s.head_overheat
        if n == 1:
            return escpos.PrinterState(offline=not s.can_print)
        if n == 2:
            return escpos.OfflineCause(cover_open=s.cover_open, paper_end_stop=s.paper == "out", error=errors)
        if n == 3:
            return escpos.ErrorCause(cutter_error=s.cutter_error, unrecoverable_error=s.unrecoverable_error,
                                     auto_recoverable_error=s.head_overheat)
        if n == 4:
            # an empty roll leaves the near-end sensor uncovered too
            return escpos.PaperSensor(near_end=s.paper != "ok", paper_end=s.paper == "out")
        raise ValueError(f"DLE EOT takes n = 1..4, not {n}")

    def status_byte(self, n: int) -> int:
        return escpos.encode_status(self.status_flags(n))

    def _answer_status(self, n: int, write: Write) -> None:
        if n not in (1, 2, 3, 4):
            return
        self.state.status_requests += 1
        if n in self.state.unsupported_status:
            return
        self._send_status(write, bytes([self.status_byte(n)]))

    # -- paper -----------------------------------------------------------------------------------

    def _execute(self, command: Command, write: Write) -> None:
        self.commands[command.op] += 1
        op = command.op
        if op is not Op.RASTER:
            self._raster_open = False
        if op is Op.TEXT:
            codec = "gb18030" if self._chinese else "cp437"
            self._line += command.data.decode(codec, errors="replace")
            self._line_started = True
        elif op is Op.LINE_FEED:
            self._put(self._line)
            self._line, self._line_started = "", False
        elif op is Op.INIT:
            self._line, self._line_started = "", False
            self._chinese = self.state.boot_chinese
            self._reset_code_settings()
        elif op is Op.ALIGN:
            if command.args[0] in (0, 1, 2, 0x30, 0x31, 0x32):  # n or ASCII "0".."2"
                self._align = escpos.Align(command.args[0] & 0x0F)
        elif op is Op.SETTING:
            self._setting(command)
        elif op is Op.BARCODE:
            self._flush_line()
            self._barcode(command)
        elif op is Op.BLOCK and command.args[0] == 0x6B:
            self._qr_function(command.data)
        elif op is Op.CHINESE_ON:
            self._chinese = True
        elif op is Op.CHINESE_OFF:
            self._chinese = False
        elif op is Op.FEED:
            self._flush_line()
            if self.state.can_print:
                self.current.feed_lines += command.args[0]
        elif op is Op.CUT:
            self._flush_line()
            if self.state.can_print:
                self.current.cut = "partial" if command.partial_cut else "full"
                self.jobs.append(self.current)
                self.current = PrintedJob()
            else:
                self.state.lost_items += 1
        elif op is Op.RASTER:
            self._flush_line()
            self._raster(command.image())
        elif op is Op.STATUS_REQUEST and not self.state.realtime_in_data:
            self._answer_status(command.args[0], write)

    def _setting(self, command: Command) -> None:
        """The barcode settings among the commands the decoder calls settings."""
        key, value = command.raw[:2], command.raw[2] if len(command.raw) > 2 else 0
        if key == b"\x1d\x68" and value >= 1:
            self._bar_height = value
        elif key == b"\x1d\x77" and 1 <= value <= 6:
            self._bar_module = value
        elif key == b"\x1d\x48" and value in (0, 1, 2, 3, 0x30, 0x31, 0x32, 0x33):
            self._hri = escpos.Hri(value & 0x0F)

    def _barcode(self, command: Command) -> None:
        if command.args[0] != escpos.CODE128:
            log.info("ESC/POS simulator: barcode type %d is not simulated; skipped", command.args[0])
            self.state.refused_codes += 1
            return
        try:
            content, symbols = escpos.parse_code128(command.data)
            picture = escpos.code128_picture(content, module=self._bar_module, height=self._bar_height, hri=self._hri)
        except ValueError as err:
            log.info("ESC/POS simulator: Code 128 not printed: %s", err)
            self.state.refused_codes += 1
            return
        if (11 * symbols + 35) * self._bar_module > self.width_dots:
            self.state.refused_codes += 1
            return
        self._put_code("code128", content, picture)

    def _qr_function(self, body: bytes) -> None:
        """One ``GS ( k`` function: ``body`` is ``cn fn parameters``; only cn 0x31 (QR) is modelled."""
        if len(body) < 3 or body[0] != 0x31:
            return
        fn, params = body[1], body[2:]
        if fn == 0x41:
            self._qr_model = params[0]
        elif fn == 0x43 and 1 <= params[0] <= 16:
            self._qr_module = params[0]
        elif fn == 0x45 and 0x30 <= params[0] <= 0x33:
            self._qr_ec = "LMQH"[params[0] - 0x30]
        elif fn == 0x50 and params[0] == 0x30:
            self._qr_data = bytes(params[1:])
        elif fn == 0x51:
            self._flush_line()
            self._print_qr()

    def _print_qr(self) -> None:
        try:
            data: str | bytes = self._qr_data.decode("utf-8")
        except UnicodeDecodeError:
            data = self._qr_data
        if self._qr_model != 0x32 or not data:
            self.state.refused_codes += 1
            return
        try:
            picture = escpos.qr_picture(data, module=self._qr_module, ec=self._qr_ec)
        except ValueError as err:
            log.info("ESC/POS simulator: QR code not printed: %s", err)
            self.state.refused_codes += 1
            return
        if picture.width > self.width_dots:
            self.state.refused_codes += 1
            return
        self._put_code("qr", data if isinstance(data, str) else data.decode("latin-1"), picture)

    def _put_code(self, kind: str, content: str, picture: Image.Image) -> None:
        """A code on paper: a strip the paper's width, the symbol placed by ``ESC a``."""
        if not self.state.can_print:
            self.state.lost_items += 1
            return
        strip = Image.new("1", (self.width_dots, picture.height), 1)
        x = {escpos.Align.LEFT: 0, escpos.Align.CENTER: (self.width_dots - picture.width) // 2,
             escpos.Align.RIGHT: self.width_dots - picture.width}[self._align]
        strip.paste(picture, (x, 0))
        self.current.items.append(strip)
        self.current.barcodes.append((kind, content))
        self.barcodes.append((kind, content))

    def _flush_line(self) -> None:
        if self._line_started:
            self._put(self._line)
            self._line, self._line_started = "", False

    def _put(self, item: str | Image.Image) -> None:
        if self.state.can_print:
            self.current.items.append(item)
        else:
            self.state.lost_items += 1

    def _raster(self, image: Image.Image) -> None:
        if not self.state.can_print:
            self.state.lost_items += 1
            self._raster_open = False
            return
        items = self.current.items
        if self._raster_open and items and isinstance(items[-1], Image.Image) and items[-1].width == image.width:
            joined = np.vstack([np.asarray(items[-1], dtype=bool), np.asarray(image, dtype=bool)])
            items[-1] = Image.fromarray(joined)
        else:
            items.append(image)
        self._raster_open = True

    # -- transports ------------------------------------------------------------------------------

    def _feed(self, session: _Session, data: bytes) -> None:  # type: ignore[override]
        """Real-time requests are answered as the bytes arrive, commands decoded in order."""
        self.received += data
        if self.state.realtime_in_data:
            window = session.tail + data
            start = 0
            while (i := window.find(b"\x10\x04", start)) >= 0 and i + 2 < len(window):
                self._answer_status(window[i + 2], session.write)
                start = i + 3
            session.tail = window[max(start, len(window) - 2):]
        session.buf += data
        for command in frames(session.buf, escpos.decode):
            self._execute(command, session.write)


class RunningEscPosSim(RunningSim[EscPosPrinterSimulator]):
    """A started printer simulator: hosts open :attr:`url`; :meth:`close` stops it."""


async def run_escpos_printer_sim(transport: str = "pty", **options: object) -> RunningEscPosSim:
    """Start an ESC/POS printer simulator on ``transport``: "pty", or "tcp", "tcp:PORT",
    "tcp:HOST:PORT". ``options`` go to :class:`EscPosPrinterSimulator`."""
    sim = EscPosPrinterSimulator(**options)  # type: ignore[arg-type]
    return RunningEscPosSim(sim, await serve(sim, transport))


async def serve(sim: EscPosPrinterSimulator, transport: str) -> PtyEndpoint | TcpEndpoint:
    """Start ``sim`` on ``transport``: "pty", or "tcp", "tcp:PORT", "tcp:HOST:PORT"."""
    return await serve_transport(sim, transport)
