"""Wire-level simulator of a TSPL label printer (hardware-protocols.md §4.4).

It reads the command stream a host sends, over a pty or TCP (``simulators._endpoints``), with the
``firmware_bridge.tspl`` decoder, and keeps an image buffer the size ``SIZE`` set (at its own
``dpi``). ``CLS`` clears it; ``BITMAP`` draws into it (overwrite, OR or XOR); ``BAR`` fills a
rectangle; ``TEXT`` is recorded with its position, font and content (decoded from the code page;
fonts are not rendered). Each ``PRINT m,n`` adds a :class:`PrintedLabel` to
:attr:`TsplPrinterSimulator.labels`: a copy of the buffer as a mode "1" image, the texts, and the
number of copies. Commands it does not model are counted in :attr:`~TsplPrinterSimulator.unknown`.

``<ESC>!?`` is answered at once with the status byte of :class:`TsplSimState` (head open, paper
jam, out of paper, out of ribbon, paused, printing, cover open, head too hot), even mid-job. A
``PRINT`` while the printer cannot print is lost and counted in :attr:`TsplSimState.lost_labels`.

Faults: :meth:`~TsplPrinterSimulator.drop_status_replies`, ``garbage_before_status``,
``delay_status_replies`` and :meth:`~TsplPrinterSimulator.unplug`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
from PIL import Image

from firmware_bridge import tspl
from simulators._device_sim import RunningSim, Session, StatusReplySim, frames, serve_transport
from simulators._endpoints import Write

log = logging.getLogger(__name__)


@dataclass
class TsplSimState:
    head_open: bool = False
    paper_jam: bool = False
    paper_out: bool = False
    ribbon_out: bool = False
    paused: bool = False
    printing: bool = False
    cover_open: bool = False
    head_overheat: bool = False
    dpi: int = 203
    code_page: str = "gbk"
    unplugged: bool = False
    lost_labels: int = 0
    status_queries: int = 0

    def status(self) -> tspl.LabelPrinterStatus:
        return tspl.LabelPrinterStatus(
            head_open=self.head_open, paper_jam=self.paper_jam, paper_out=self.paper_out,
            ribbon_out=self.ribbon_out, paused=self.paused, printing=self.printing,
            cover_open=self.cover_open, head_overheat=self.head_overheat)


@dataclass(frozen=True)
class LabelText:
    x: int
    y: int
    font: str
    content: str


@dataclass
class PrintedLabel:
    image: Image.Image  # the whole label, mode "1"
    texts: list[LabelText]
    size_mm: tuple[float, float] | None
    copies: int = 1

    @property
    def text(self) -> str:
        return "\n".join(t.content for t in sorted(self.texts, key=lambda t: (t.y, t.x)))


class TsplPrinterSimulator(StatusReplySim):
    """A simulated TSPL label printer; ``label_mm`` is the buffer size before the first ``SIZE``."""

    NAME = "TSPL label printer"

    def __init__(self, *, dpi: int = 203, label_mm: tuple[float, float] = (76, 130), code_page: str = "gbk") -> None:
        super().__init__()
        self.state = TsplSimState(dpi=dpi, code_page=code_page)
        self.labels: list[PrintedLabel] = []
        self.settings: dict[str, tuple[str, ...]] = {}
        self.unknown: Counter[str] = Counter()
        self.received = bytearray()
        self._size_mm: tuple[float, float] | None = label_mm
        self._black = self._blank(label_mm)
        self._texts: list[LabelText] = []

    # -- what a person does ----------------------------------------------------------------------

    def set(self, **flags: bool) -> None:
        """Change the printer's state: ``sim.set(paper_out=True)``, ``sim.set(head_open=False)``..."""
        for name, value in flags.items():
            if name not in tspl.LabelPrinterStatus.__dataclass_fields__:
                raise ValueError(f"no such printer condition: {name}")
            setattr(self.state, name, bool(value))

    @property
    def can_print(self) -> bool:
        return self.state.status().ready

    # -- commands --------------------------------------------------------------------------------

    def _blank(self, size_mm: tuple[float, float] | None) -> np.ndarray:
        if size_mm is None:
            return np.zeros((0, 0), dtype=bool)
        w, h = (round(mm * self.state.dpi / 25.4) for mm in size_mm)
        return np.zeros((h, w), dtype=bool)

    def _execute(self, frame: tspl.Frame, write: Write) -> None:
        if isinstance(frame, tspl.Immediate):
            if frame.code == "?":
                self._answer_status(write)
            else:
                self.unknown[f"ESC!{frame.code}"] += 1
        elif isinstance(frame, tspl.Bitmap):
            self._bitmap(frame)
        elif isinstance(frame, tspl.Unknown):
            self.unknown["?"] += 1
        else:
            try:
                self._command(frame)
            except (ValueError, IndexError):
                self.unknown[frame.name] += 1

    def _command(self, command: tspl.Command) -> None:
        name, args = command.name, command.args
        if name == "SIZE":
            width, height = args  # ValueError unless exactly two
            dpi = self.state.dpi
            dots = [tspl.mm_or_inches(width, dpi), tspl.mm_or_inches(height, dpi)]
            if min(dots) <= 0 or max(dots) > 20 * dpi:
                raise ValueError("implausible label size")
            self._size_mm = (_mm(width, dots[0], dpi), _mm(height, dots[1], dpi))
            self._black = np.zeros((dots[1], dots[0]), dtype=bool)
            self.settings[name] = args
        elif name == "CLS":
            self._black[:] = False
            self._texts = []
        elif name == "TEXT":
            x, y, font, _rotation, _xm, _ym, content = args
            self._texts.append(LabelText(int(x), int(y), font, content))
        elif name == "BAR":
            x, y, w, h = (int(a) for a in args[:4])
            if min(x, y, w, h) < 0:
                raise ValueError("negative BAR")
            self._black[y:y + h, x:x + w] = True
        elif name == "PRINT":
            sets = int(args[0]) if args else 1
            copies = int(args[1]) if len(args) > 1 else 1
            if not self.can_print:
                self.state.lost_labels += 1
                return
            image = Image.fromarray(~self._black)
            self.labels.append(PrintedLabel(image, list(self._texts), self._size_mm, sets * copies))
        elif name in ("GAP", "BLINE", "DIRECTION", "REFERENCE", "DENSITY", "SPEED", "OFFSET", "SET", "CODEPAGE",
                      "SHIFT"):
            self.settings[name] = args
        else:
            self.unknown[name] += 1

    def _bitmap(self, frame: tspl.Bitmap) -> None:
        black = ~np.asarray(frame.image(), dtype=bool)
        height, width = self._black.shape
        x, y = frame.x, frame.y
        if x >= width or y >= height:
            return
        black = black[: height - y, : width - x]
        target = self._black[y:y + black.shape[0], x:x + black.shape[1]]
        if frame.mode == tspl.BitmapMode.OR:
            target |= black
        elif frame.mode == tspl.BitmapMode.XOR:
            target ^= black
        else:
            target[:] = black

    def _answer_status(self, write: Write) -> None:
        self.state.status_queries += 1
        self._send_status(write, bytes([tspl.encode_status(self.state.status())]))

    # -- transports ------------------------------------------------------------------------------

    def _feed(self, session: Session, data: bytes) -> None:
        self.received += data
        session.buf += data
        for frame in frames(session.buf, lambda buf: tspl.decode(buf, code_page=self.state.code_page)):
            self._execute(frame, session.write)


def _mm(arg: str, dots: int, dpi: int) -> float:
    """A SIZE argument in mm: as declared when given in mm, else from its dots."""
    arg = arg.strip().lower()
    return float(arg[:-2]) if arg.endswith("mm") else dots * 25.4 / dpi


class RunningTsplSim(RunningSim[TsplPrinterSimulator]):
    """A started label printer simulator: hosts open :attr:`url`; :meth:`close` stops it."""


async def run_tspl_printer_sim(transport: str = "pty", **options: object) -> RunningTsplSim:
    """Start a TSPL printer simulator on ``transport``: "pty", or "tcp", "tcp:PORT", "tcp:HOST:PORT".
    ``options`` go to :class:`TsplPrinterSimulator`."""
    sim = TsplPrinterSimulator(**options)  # type: ignore[arg-type]
    return RunningTsplSim(sim, await serve_transport(sim, transport))
