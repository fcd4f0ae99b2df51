"""Receipt and label printers: put 1-bit images and text lines on paper, and know the printer's state.

A printer is composed, not inherited (STYLE.md): ``Printer(link, profile, protocol)``.

* ``link``: the byte pipe, a ``firmware_bridge.link.SerialLink`` (USB-CDC or RS-232 port,
  ``socket://host:9100`` for a network printer);
* ``profile``: a frozen :class:`PrinterProfile`, what the paper and the print head are (width in
  dots, dpi, code page, label size);
* ``protocol``: a :class:`PrinterProtocol`, the command language: how a job becomes bytes and how
  the state is asked for. One per language in :data:`BACKENDS`, imported lazily: ``"escpos"``
  (receipt printers, §4.1-4.3 of hardware-protocols.md) and ``"tspl"`` (label printers, §4.4).

A new command language subclasses :class:`PrinterProtocol` and must override
``job(parts, profile)`` and ``read_status(link, timeout)``; it may override ``check_profile(profile)``.

Policy that lives in :class:`Printer`, whatever the language: one operation at a time on the link;
images must be 1-bit and fit the profile; **every print asks the printer's state first** and refuses
with :class:`PrinterNotReady` (naming the reason: out of paper, cover open, offline, an error) rather
than send a job into a printer that will lose it; link failures become ``DeviceIOError`` /
``DeviceTimeout``; logs carry sizes, never the text printed (receipts carry names and codes).

Labels and receipts are rendered elsewhere as a 1-bit image at the printer's dpi
(kiosk-ux-and-stack.md §10.4); :meth:`Printer.print_text_lines` is for plain receipts and the test
page, and uses the printer's own fonts (GBK Chinese mode on ESC/POS, ``TSS24.BF2`` on TSPL).

A job (:meth:`Printer.print_job`) is a sequence of parts: text lines (str), 1-bit images, and
:class:`Code128` / :class:`QrCode`, codes the printer draws itself, centred. ESC/POS prints them
natively (``GS k``, ``GS ( k``): a few dozen bytes instead of a raster, sharp at any module size. A
TSPL label printer gets them as a ``BITMAP`` drawn by :func:`render_code` (the same symbol), so one
job prints on either language.

The USB printer class (``/dev/usb/lp0``) is not a tty and cannot be opened by pyserial: such a
printer needs a file-like link, which is not written yet.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from PIL import Image

from hal.device import Device
from hal.errors import DeviceIOError, DeviceOpenError, DeviceTimeout, DeviceUnavailable, HalError

log = logging.getLogger(__name__)

WRITE_CHUNK = 1024  # bytes per write
QUEUE_ROOM = 1024  # write the next chunk only once the OS output queue holds at most this much


# -- values ------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Code128:
    """A Code 128 the printer draws itself (a waybill or parcel number), centred on the paper.

    ``data``: printable ASCII. The paper limits its length: at module 2, 22 symbols on 80 mm paper
    and 14 on 58 mm (a character is a symbol; a pair of digits in a long run is one). ``height``: bar
    height in dots (1-255; 80 = 10 mm at 203 dpi). ``module``: dots a narrow bar (2-6; 2 = 0.25 mm,
    the smallest scanners read reliably). ``hri``: print the human-readable line below. Checked on
    creation (ValueError); whether it fits the paper is checked when the job is built.
    """

    data: str
    height: int = 80
    module: int = 2
    hri: bool = True

    def __post_init__(self) -> None:
        from firmware_bridge import escpos

        if not isinstance(self.data, str):
            raise TypeError(f"Code128 data must be a str, not {type(self.data).__name__}")
        escpos.code128(self.data, height=self.height, module=self.module)

    def __repr__(self) -> str:  # the content may be a pickup code: show its size only
        return f"Code128(<{len(self.data)} chars>, height={self.height}, module={self.module}, hri={self.hri})"

    @property
    def width_dots(self) -> int:
        """Printed width in dots as ESC/POS encodes it, quiet zones not included."""
        from firmware_bridge import escpos

        return escpos.code128_modules(self.data) * self.module


@dataclass(frozen=True, repr=False)
class QrCode:
    """A QR code (model 2) the printer draws itself (a tracking link), centred on the paper.

    ``data``: any text, stored as UTF-8. ``module``: dots a module (1-16; 6 = 0.75 mm at 203 dpi).
    ``ec``: error correction "L", "M", "Q" or "H". Checked on creation (ValueError); whether it fits
    the paper is checked when the job is built.
    """

    data: str
    module: int = 6
    ec: str = "M"

    def __post_init__(self) -> None:
        from firmware_bridge import escpos

        if not isinstance(self.data, str):
            raise TypeError(f"QrCode data must be a str, not {type(self.data).__name__}")
        escpos.qr_code(self.data, module=self.module, ec=self.ec)

    def __repr__(self) -> str:  # the content may carry a pickup code: show its size only
        return f"QrCode(<{len(self.data)} chars>, module={self.module}, ec={self.ec!r})"


Code = Code128 | QrCode
Part = str | Image.Image | Code128 | QrCode  # a text line, a 1-bit image, or a code the printer draws


@dataclass(frozen=True)
class PrinterProfile:
    """What the paper and the print head are. Load it once from configuration.

    ``width_dots``: printable width (80 mm receipt paper: 576 at 203 dpi; 58 mm: 384).
    ``dpi``: 203 (8 dots/mm) or 300 (12 dots/mm). ``code_page``: Python codec of Chinese text
    (GBK, the two-byte GB18030 area these printers render). ``label_size_mm``: (width, height) of
    one label, None for continuous receipt paper; TSPL needs it. ``gap_mm``: gap between labels.
    ``feed_lines``: ESC/POS lines fed before the cut (the cutter sits above the head).
    ``cutter``: the printer has an auto-cutter. ``density``: TSPL ``DENSITY`` 0-15, None keeps the
    printer's. ``band_rows``: ESC/POS raster rows per ``GS v 0`` block (printer buffer size).
    ``status_timeout``: seconds to wait for a status byte.
    """

    width_dots: int = 576
    dpi: int = 203
    code_page: str = "gbk"
    label_size_mm: tuple[float, float] | None = None
    gap_mm: float = 2.0
    feed_lines: int = 4
    cutter: bool = True
    density: int | None = None
    band_rows: int = 960
    status_timeout: float = 0.5

    def __post_init__(self) -> None:
        if self.width_dots < 8 or self.dpi < 100:
            raise ValueError(f"implausible printer: {self.width_dots} dots at {self.dpi} dpi")
        if self.label_size_mm is not None and min(self.label_size_mm) <= 0:
            raise ValueError(f"label size must be positive, not {self.label_size_mm}")
        if self.density is not None and not 0 <= self.density <= 15:
            raise ValueError(f"density must be 0-15, not {self.density}")
        "".encode(self.code_page)  # LookupError now, not at the first receipt

    @classmethod
    def label(cls, width_mm: float, height_mm: float, *, dpi: int = 203, **options: Any) -> PrinterProfile:
        """A label printer whose printable width is the label's width (76 x 130 mm at 203 dpi:
        607 x 1039 dots)."""
        return cls(width_dots=round(width_mm * dpi / 25.4), dpi=dpi, label_size_mm=(width_mm, height_mm), **options)

    @property
    def dots_per_mm(self) -> float:
        return self.dpi / 25.4

    @property
    def label_dots(self) -> tuple[int, int] | None:
        """(width, height) of one label in dots, or None for receipt paper."""
        if self.label_size_mm is None:
            return None
        return tuple(round(mm * self.dots_per_mm) for mm in self.label_size_mm)  # type: ignore[return-value]


#: named profiles for configuration and the diagnostics command line
PROFILES: dict[str, PrinterProfile] = {
    "receipt-80mm": PrinterProfile(width_dots=576),
    "receipt-58mm": PrinterProfile(width_dots=384),
    "label-76x130": PrinterProfile.label(76, 130),
    "label-100x150": PrinterProfile.label(100, 150),
}
DEFAULT_PROFILE = {"escpos": "receipt-80mm", "tspl": "label-76x130"}

_REASONS = {
    "paper_out": "out of paper",
    "cover_open": "cover open",
    "offline": "offline",
    "cutter": "cutter error",
    "paper_jam": "paper jam",
    "ribbon_out": "out of ribbon",
    "head_overheat": "print head too hot",
    "unrecoverable": "unrecoverable error",
    "recoverable": "recoverable error",
    "auto_recoverable": "auto-recoverable error",
    "paused": "paused",
    "error": "error",
}


@dataclass(frozen=True)
class PrinterStatus:
    """The printer's state when asked. ``errors`` names faults beyond paper and cover: "cutter",
    "paper_jam", "ribbon_out", "head_overheat", "unrecoverable", "recoverable", "auto_recoverable",
    "paused", "error". ``paper_low`` is a warning (the roll's near-end sensor), not a fault.
    ``raw`` holds the status bytes as received, for diagnostics."""

    online: bool
    paper_out: bool = False
    paper_low: bool = False
    cover_open: bool = False
    errors: tuple[str, ...] = ()
    busy: bool = False
    raw: dict[str, int] = field(default_factory=dict, hash=False)

    @property
    def ready(self) -> bool:
        return self.online and not (self.paper_out or self.cover_open or self.errors)

    @property
    def problems(self) -> tuple[str, ...]:
        """Why it is not ready, most useful first; "offline" only when nothing explains it."""
        found = [name for name, on in (("paper_out", self.paper_out), ("cover_open", self.cover_open)) if on]
        found += list(self.errors)
        if not self.online and not found:
            found.append("offline")
        return tuple(found)

    @property
    def reasons(self) -> tuple[str, ...]:
        """:attr:`problems` in words for people."""
        return tuple(_REASONS.get(p, p) for p in self.problems)

    def as_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "online": self.online, "paper_out": self.paper_out,
                "paper_low": self.paper_low, "cover_open": self.cover_open, "errors": list(self.errors),
                "busy": self.busy, "problems": list(self.problems),
                "raw": {k: f"0x{v:02X}" for k, v in self.raw.items()}}


class PrinterNotReady(HalError):
    """The printer answered, and it cannot print now: :attr:`status` says why (out of paper, cover
    open, offline, an error). Nothing was sent. Not an I/O failure: fix the printer and retry."""

    def __init__(self, status: PrinterStatus) -> None:
        self.status = status
        super().__init__(f"printer not ready: {', '.join(status.reasons) or 'unknown'}")


@dataclass(frozen=True)
class PrintedTestPage:
    """What :meth:`Printer.test_page` printed: its text lines, the contents of its Code 128 and QR
    code, and the image holding the codes and the ruler."""

    lines: tuple[str, ...]
    code128: str
    qr: str
    image: Image.Image = field(repr=False, compare=False)


# -- the link a printer needs ------------------------------------------------------------------


class Link(Protocol):
    """What :class:`Printer` needs of its link (``firmware_bridge.link.SerialLink`` is one)."""

    url: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, data: bytes) -> None: ...

    async def read(self, timeout: float | None, max_bytes: int = 4096) -> bytes: ...

    async def discard_input(self) -> bytes: ...


# -- command languages -------------------------------------------------------------------------


class PrinterProtocol(abc.ABC):
    """One printer command language.

    Subclasses must override ``job(parts, profile)`` (text lines and 1-bit images, in order, to the
    bytes of one job) and ``read_status(link, timeout)`` (ask, read, decode). They may override
    ``check_profile(profile)`` to refuse a profile the language cannot use. Link errors
    (``firmware_bridge.errors.LinkError``) may propagate: :class:`Printer` translates them.
    """

    name: ClassVar[str]

    def check_profile(self, profile: PrinterProfile) -> None:
        """Raise ValueError when this language cannot print with ``profile``."""

    @abc.abstractmethod
    def job(self, parts: Sequence[Part], profile: PrinterProfile) -> bytes: ...

    @abc.abstractmethod
    async def read_status(self, link: Link, timeout: float) -> PrinterStatus: ...


async def _ask_one_byte(link: Link, request: bytes, timeout: float) -> int | None:
    """Send ``request`` after throwing away stale input (a real-time status sequence inside raster
    data makes some printers answer it); the first byte back, or None after ``timeout`` seconds."""
    await link.discard_input()
    await link.write(request)
    reply = await link.read(timeout, max_bytes=1)
    return reply[0] if reply else None


class EscPosProtocol(PrinterProtocol):
    """ESC/POS receipt printers: raster images (``GS v 0``), GBK text in Chinese mode, feed and cut;
    state from ``DLE EOT 1..4``.

    ``DLE EOT 1`` must be answered (else ``DeviceTimeout``). A printer that never answers 2, 3 or
    4 (some do not have a near-end sensor) is remembered as not supporting it, after one retry, and
    the flags it would carry stay False.
    """

    name = "escpos"

    def __init__(self) -> None:
        self.unsupported: set[int] = set()

    def job(self, parts: Sequence[Part], profile: PrinterProfile) -> bytes:
        from firmware_bridge import escpos

        out = bytearray(escpos.init())
        for part in parts:
            if isinstance(part, str):
                out += escpos.text_line(part, code_page=profile.code_page)
            elif isinstance(part, Code128 | QrCode):
                out += self._code(part, profile)
            else:
                out += escpos.raster(part, band_rows=profile.band_rows)
        out += escpos.feed(profile.feed_lines)
        if profile.cutter:
            out += escpos.cut()
        return bytes(out)

    @staticmethod
    def _code(part: Code, profile: PrinterProfile) -> bytes:
        """A native code, centred (``ESC a 1``, back to left after). A printer silently skips a code
        wider than its paper, so that is a ValueError here, before anything is sent."""
        from firmware_bridge import escpos

        width = part.width_dots if isinstance(part, Code128) else code_width_dots(part)
        if width > profile.width_dots:
            raise ValueError(f"a {width}-dot {type(part).__name__} does not fit {profile.width_dots} dots; "
                             "use a smaller module or less data")
        if isinstance(part, Code128):
            code = escpos.code128(part.data, height=part.height, module=part.module,
                                  hri=escpos.Hri.BELOW if part.hri else escpos.Hri.NONE)
        else:
            code = escpos.qr_code(part.data, module=part.module, ec=part.ec)
        return escpos.align(escpos.Align.CENTER) + code + escpos.align(escpos.Align.LEFT)

    async def read_status(self, link: Link, timeout: float) -> PrinterStatus:
        from firmware_bridge import escpos

        answers: dict[int, int] = {}
        for n in (1, 2, 3, 4):
            if n in self.unsupported:
                continue
            value = await self._ask(link, n, timeout)
            if value is None:
                if n == 1:
                    raise DeviceTimeout(f"no answer to DLE EOT 1 within {timeout} s (printer off, wrong port or "
                                        "baud rate, or not an ESC/POS printer)")
                log.warning("printer %s does not answer DLE EOT %d; treating it as unsupported", link.url, n)
                self.unsupported.add(n)
                continue
            answers[n] = value
        state = escpos.decode_status(1, answers[1])
        offline = escpos.decode_status(2, answers[2]) if 2 in answers else escpos.OfflineCause()
        error = escpos.decode_status(3, answers[3]) if 3 in answers else escpos.ErrorCause()
        paper = escpos.decode_status(4, answers[4]) if 4 in answers else escpos.PaperSensor()
        errors = [name for name, on in (("cutter", error.cutter_error), ("unrecoverable", error.unrecoverable_error),
                                        ("auto_recoverable", error.auto_recoverable_error),
                                        ("recoverable", error.recoverable_error)) if on]
        if offline.error and not errors:
            errors.append("error")
        return PrinterStatus(
            online=not state.offline,
            paper_out=paper.paper_end or offline.paper_end_stop,
            paper_low=paper.near_end and not paper.paper_end,
            cover_open=offline.cover_open,
            errors=tuple(errors),
            raw={f"dle_eot_{n}": v for n, v in answers.items()},
        )

    async def _ask(self, link: Link, n: int, timeout: float) -> int | None:
        from firmware_bridge import escpos

        bad: int | None = None
        for _ in range(2):
            value = await _ask_one_byte(link, escpos.status_request(n), timeout)
            if value is None:
                continue
            if escpos.is_status_byte(value):
                return value
            bad = value
        if bad is not None:
            raise DeviceIOError(f"printer answered DLE EOT {n} with 0x{bad:02X}, which is not an ESC/POS status "
                                "byte (wrong baud rate, or not an ESC/POS printer)")
        return None


class TsplProtocol(PrinterProtocol):
    """TSPL label printers: one label per job (``SIZE``/``GAP``/``CLS``/``BITMAP``/``TEXT``/``PRINT
    1,1``), the whole stream in the profile's code page; state from ``<ESC>!?``.

    Layout of a job: parts go top to bottom; a text line takes 32 dots (``TSS24.BF2`` at x = 16),
    an image its own height at x = 0, a :class:`Code128` or :class:`QrCode` a ``BITMAP`` from
    :func:`render_code` (centred). A job that does not fit the label is refused (ValueError).
    """

    name = "tspl"
    LINE_PITCH = 32
    TEXT_X = 16

    def check_profile(self, profile: PrinterProfile) -> None:
        if profile.label_size_mm is None:
            raise ValueError("a TSPL printer needs label_size_mm in its profile")

    def job(self, parts: Sequence[Part], profile: PrinterProfile) -> bytes:
        from firmware_bridge import tspl

        self.check_profile(profile)
        width_mm, height_mm = profile.label_size_mm  # type: ignore[misc]
        _, height_dots = profile.label_dots  # type: ignore[misc]
        body = bytearray()
        y = 0
        for part in parts:
            if isinstance(part, Code128 | QrCode):
                part = render_code(part, profile.width_dots)
            if isinstance(part, str):
                if y + self.LINE_PITCH > height_dots:
                    raise ValueError("the text does not fit on the label")
                body += tspl.text(self.TEXT_X, y + 4, part, code_page=profile.code_page)
                y += self.LINE_PITCH
            else:
                if y + part.height > height_dots:
                    raise ValueError(f"a {part.height}-dot image does not fit below {y} dots on a "
                                     f"{height_dots}-dot label")
                body += tspl.bitmap(0, y, part)
                y += part.height
        head = tspl.size_mm(width_mm, height_mm) + tspl.gap_mm(profile.gap_mm) + tspl.direction(1)
        if profile.density is not None:
            head += tspl.density(profile.density)
        return head + tspl.cls() + bytes(body) + tspl.print_(1, 1)

    async def read_status(self, link: Link, timeout: float) -> PrinterStatus:
        from firmware_bridge import tspl

        value = None
        for _ in range(2):
            value = await _ask_one_byte(link, tspl.status_query(), timeout)
            if value is not None:
                break
        if value is None:
            raise DeviceTimeout(f"no answer to <ESC>!? within {timeout} s (printer off, wrong port or baud rate, "
                                "or not a TSPL printer)")
        s = tspl.decode_status(value)
        errors = [name for name, on in (("paper_jam", s.paper_jam), ("ribbon_out", s.ribbon_out),
                                        ("head_overheat", s.head_overheat)) if on]
        return PrinterStatus(online=not s.paused, paper_out=s.paper_out, cover_open=s.head_open or s.cover_open,
                             errors=tuple(errors) + (("paused",) if s.paused else ()), busy=s.printing,
                             raw={"status": value})


#: protocol name -> "module:Class", imported only when configured (python-can's BACKENDS table)
BACKENDS: dict[str, str] = {
    "escpos": "hal.printer:EscPosProtocol",
    "tspl": "hal.printer:TsplProtocol",
}


def printer_protocol(name: str) -> PrinterProtocol:
    """The command language ``name``. Raises ``DeviceUnavailable``."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise DeviceUnavailable(f"unknown printer protocol {name!r}; known: {', '.join(sorted(BACKENDS))}") from None
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as err:
        raise DeviceUnavailable(f"printer protocol {name!r} cannot be imported: {err}") from err
    return cls()


# -- the printer -------------------------------------------------------------------------------


class Printer(Device):
    """One printer: ``Printer(link, profile, protocol)``. Open with ``await printer.open()`` or
    ``async with printer:``; build one from configuration with :func:`printer`.

    Every method raises ``DeviceIOError`` when the link fails (unplugged, peer gone) and
    ``DeviceTimeout`` when the printer does not answer its status request or takes no data for
    ``write_timeout`` seconds (a printer busy printing stops reading; its buffer is finite).
    """

    def __init__(self, link: Link, profile: PrinterProfile, protocol: PrinterProtocol, *,
                 write_timeout: float = 10.0) -> None:
        super().__init__()
        self.write_timeout = write_timeout
        protocol.check_profile(profile)
        self.link = link
        self.profile = profile
        self.protocol = protocol
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<Printer {self.protocol.name} {self.link.url} {self.profile.width_dots} dots>"

    def describe(self) -> dict[str, Any]:
        """Model and link details for diagnostics."""
        return {"protocol": self.protocol.name, "url": self.link.url, "width_dots": self.profile.width_dots,
                "dpi": self.profile.dpi, "label_size_mm": self.profile.label_size_mm,
                "code_page": self.profile.code_page}

    async def _open(self) -> None:
        from firmware_bridge.errors import LinkOpenError

        try:
            await self.link.open()
        except LinkOpenError as err:
            raise DeviceOpenError(f"printer: {err}") from err

    async def _close(self) -> None:
        await self.link.close()

    async def status(self) -> PrinterStatus:
        """Ask the printer for its state now."""
        async with self._lock:
            return await self._status()

    async def print_image(self, image: Image.Image) -> None:
        """Print one 1-bit image (a label, a rendered receipt) as one job: on a receipt printer
        followed by a feed and a cut, on a label printer one label. Raises :class:`PrinterNotReady`
        (nothing sent) and ValueError for an image that is not mode "1" or does not fit."""
        await self.print_job([image])

    async def print_text_lines(self, lines: Sequence[str]) -> None:
        """Print text lines (Chinese allowed) with the printer's own font as one job."""
        if isinstance(lines, str):
            raise TypeError("print_text_lines takes a sequence of lines, not one string")
        await self.print_job(list(lines))

    async def print_job(self, parts: Sequence[Part]) -> None:
        """Print text lines, 1-bit images and codes (:class:`Code128`, :class:`QrCode`), top to
        bottom, as one job. ValueError (nothing sent) for an image or a code that does not fit."""
        for part in parts:
            if not isinstance(part, str | Code128 | QrCode):
                self._check_image(part)
        data = self.protocol.job(parts, self.profile)  # ValueError before anything is sent
        async with self._lock:
            status = await self._status()
            if not status.ready:
                log.warning("printer %s not ready: %s", self.link.url, ", ".join(status.problems))
                raise PrinterNotReady(status)
            if status.paper_low:
                log.warning("printer %s: paper low", self.link.url)
            await self._write(data)
        log.info("printer %s: sent a %d-byte job (%d parts)", self.link.url, len(data), len(parts))

    async def test_page(self, station: str = "postkiosk", when: datetime | None = None) -> PrintedTestPage:
        """Print a test page: the station name, date and time, a Chinese line, the profile, a Code 128,
        a QR code and a ruler across the printable width (a tick every mm, longer every 5 and 10 mm).
        Returns what was printed."""
        when = when or datetime.now().astimezone()
        code128 = f"PK-TEST-{when:%Y%m%d%H%M%S}"
        qr = f"postkiosk test page {station} {when:%Y-%m-%d %H:%M:%S} 测试"
        width_mm = self.profile.width_dots / self.profile.dots_per_mm
        lines = (station, f"{when:%Y-%m-%d %H:%M:%S}", "中文测试：取件码 快递柜 收件人",
                 f"{self.protocol.name} {self.profile.width_dots} dots = {width_mm:.1f} mm at {self.profile.dpi} dpi")
        image = render_test_image(self.profile, code128, qr)
        await self.print_job([*lines, image])
        return PrintedTestPage(lines, code128, qr, image)

    def _check_image(self, image: Image.Image) -> None:
        if not isinstance(image, Image.Image) or image.mode != "1":
            raise ValueError("print a 1-bit PIL image (mode '1'); render it at the printer's dpi first")
        if image.width > self.profile.width_dots or image.width == 0 or image.height == 0:
            raise ValueError(f"a {image.width} x {image.height} image does not fit {self.profile.width_dots} dots")

    async def _status(self) -> PrinterStatus:
        self._require_open()
        return await self._io(self.protocol.read_status(self.link, self.profile.status_timeout))

    async def _write(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        for start in range(0, len(data), WRITE_CHUNK):
            # pyserial 3.5 retries a non-blocking write in a busy loop while the OS buffer is full
            # (it swallows EAGAIN), which would freeze the event loop until the printer catches up:
            # never hand the OS a chunk it has no room for.
            deadline = loop.time() + self.write_timeout
            while (queued := _queued_bytes(self.link)) is not None and queued > QUEUE_ROOM:
                if loop.time() > deadline:
                    raise DeviceTimeout(f"printer {self.link.url} took no data for {self.write_timeout} s")
                await asyncio.sleep(0.002)
            await self._io(self.link.write(data[start:start + WRITE_CHUNK]))
            await asyncio.sleep(0)

    async def _io(self, operation: Any) -> Any:
        from firmware_bridge.errors import LinkError, LinkTimeout

        try:
            return await operation
        except LinkTimeout as err:
            raise DeviceTimeout(f"printer {self.link.url}: {err}") from err
        except LinkError as err:
            raise DeviceIOError(f"printer {self.link.url}: {err}") from err

    def _require_open(self) -> None:
        if not self.is_open:
            raise RuntimeError("printer is not open")


def _queued_bytes(link: Link) -> int | None:
    """Bytes the OS still holds for the wire, when the link can tell (a tty), else None.

    ``SerialLink`` does not expose this yet, so this reads pyserial-asyncio's public
    ``transport.serial`` through the link's writer; a link with an ``out_waiting()`` method wins.
    """
    own = getattr(link, "out_waiting", None)
    if callable(own):
        return own()
    try:
        return link._writer.transport.serial.out_waiting  # type: ignore[attr-defined]
    except Exception:  # a socket:// link has no output queue to ask; an ioctl may fail
        return None


def printer(protocol: str, url: str, profile: PrinterProfile | str | None = None, *, baudrate: int = 9600,
            write_timeout: float = 10.0, exclusive: bool = True, **link_options: Any) -> Printer:
    """A printer speaking ``protocol`` ("escpos" or "tspl") on ``url`` (not opened yet).

    ``profile``: a :class:`PrinterProfile`, a name from :data:`PROFILES`, or None for the protocol's
    default (80 mm receipts; 76 x 130 mm labels). ``write_timeout``: seconds one 1 KiB chunk may take
    to leave (a printer that is busy printing stops reading). ``baudrate`` is ignored by USB-CDC and
    TCP links; ``link_options`` (``rtscts``, ``dsrdtr``...) go to pyserial.
    """
    from firmware_bridge.link import SerialLink

    if profile is None:
        profile = DEFAULT_PROFILE.get(protocol, "receipt-80mm")
    if isinstance(profile, str):
        try:
            profile = PROFILES[profile]
        except KeyError:
            raise ValueError(f"unknown printer profile {profile!r}; known: {', '.join(PROFILES)}") from None
    language = printer_protocol(protocol)
    link = SerialLink(url, baudrate, exclusive=exclusive, write_timeout=write_timeout, **link_options)
    return Printer(link, profile, language, write_timeout=write_timeout)


# -- codes as images ---------------------------------------------------------------------------


def code_width_dots(code: Code) -> int:
    """Printed width of ``code`` in dots, quiet zones not included. For a QR code the version is the
    one zxing-cpp picks for UTF-8 bytes; a printer picks the same or a smaller one."""
    if isinstance(code, Code128):
        return code.width_dots
    return render_code(code).width


def render_code(code: Code, width_dots: int | None = None) -> Image.Image:
    """``code`` as the printer would draw it, a 1-bit image: the bare symbol, or, given
    ``width_dots``, centred on a strip that wide (ValueError when it does not fit). For TSPL
    printers and for previews."""
    from firmware_bridge import escpos

    if isinstance(code, Code128):
        symbol = escpos.code128_picture(code.data, module=code.module, height=code.height,
                                        hri=escpos.Hri.BELOW if code.hri else escpos.Hri.NONE)
    else:
        symbol = escpos.qr_picture(code.data, module=code.module, ec=code.ec)
    if width_dots is None:
        return symbol
    if symbol.width > width_dots:
        raise ValueError(f"a {symbol.width}-dot {type(code).__name__} does not fit {width_dots} dots")
    strip = Image.new("1", (width_dots, symbol.height), 1)
    strip.paste(symbol, ((width_dots - symbol.width) // 2, 0))
    return strip


# -- test page ---------------------------------------------------------------------------------


def render_test_image(profile: PrinterProfile, code128: str, qr: str) -> Image.Image:
    """The graphic part of the test page, ``profile.width_dots`` wide: a ruler, a Code 128 (2 dots a
    module, ~0.25 mm at 203 dpi) and a QR code (4 dots a module)."""
    import numpy as np
    import zxingcpp

    width = profile.width_dots
    per_mm = profile.dots_per_mm
    ruler = np.ones((40, width), dtype=bool)
    ruler[0:2, :] = False
    mm = 0
    while round(mm * per_mm) < width:
        x = round(mm * per_mm)
        ruler[2:(24 if mm % 10 == 0 else 16 if mm % 5 == 0 else 8), x] = False
        mm += 1
    ruler[:, width - 1] = False  # the last printable dot

    def code(content: str, fmt: Any, scale: int) -> Any:
        symbol = zxingcpp.create_barcode(content, fmt)
        while True:
            pixels = np.asarray(zxingcpp.write_barcode_to_image(symbol, scale=scale)) > 127
            if pixels.shape[1] <= width or scale == 1:
                return pixels[:, :width]
            scale -= 1

    blocks = [ruler, code(code128, zxingcpp.BarcodeFormat.Code128, 2), code(qr, zxingcpp.BarcodeFormat.QRCode, 4)]
    rows = []
    for block in blocks:
        padded = np.ones((block.shape[0], width), dtype=bool)
        padded[:, : block.shape[1]] = block
        rows += [padded, np.ones((16, width), dtype=bool)]
    return Image.fromarray(np.vstack(rows[:-1]))
