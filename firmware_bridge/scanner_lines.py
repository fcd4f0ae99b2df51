"""Line framing of barcode/QR scanners in serial or USB-CDC mode (hardware-protocols.md §3.1, §3.3).

A scanner sends each code it reads as one line::

    +-------------------+----------------------------+----------------------------+
    | AIM id (optional) | data (UTF-8 on CDC)        | suffix                     |
    | "]" c m  3 bytes  | 1..max_length bytes        | CR | LF | CR LF | (nothing) |
    +-------------------+----------------------------+----------------------------+

``decode(buf, aim_ids=..., flush=...) -> (consumed, line | None)`` like every codec here, with
``0`` meaning "need more bytes". No clocks: a scanner set to send no suffix is framed by the caller,
which passes ``flush=True`` once the line has been quiet for its inter-character timeout.

Resynchronisation rules:

* CR, LF and CR LF all end a line. CR ends it at once (no waiting for a LF); a LF that follows is
  then an empty line. Empty lines are consumed and ignored (``(n, None)``).
* A line longer than ``max_length`` bytes (a stuck scanner, line noise) is consumed and dropped, so
  the buffer never grows without bound.
* With ``aim_ids``, a line starting with ``]`` and at least three bytes long has its first three bytes
  taken as the symbology identifier (``]Q1``, ``]C0``, ``]E0``...); a line without one is kept
  whole with ``symbology=None`` (a scanner whose AIM setting was lost is still usable).
* Bytes that are not UTF-8 are not an error here: the line is returned with ``text=None`` and its
  raw ``data``, so the caller can say "unreadable" instead of crashing.
"""

from __future__ import annotations

from dataclasses import dataclass

CR = 0x0D
LF = 0x0A
AIM_FLAG = 0x5D  # "]"
AIM_LENGTH = 3
MAX_LINE = 4096  # bytes; a QR code holds at most 2953 bytes


@dataclass(frozen=True)
class ScanLine:
    """One code as the scanner sent it, without AIM prefix and suffix."""

    data: bytes
    symbology: str | None = None  # "]Q1", "]C0"... when AIM ids are enabled and present

    @property
    def text(self) -> str | None:
        """``data`` as UTF-8, or None when it is not valid UTF-8."""
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            return None


def decode(
    buf: bytes | bytearray,
    *,
    aim_ids: bool = False,
    flush: bool = False,
    max_length: int = MAX_LINE,
) -> tuple[int, ScanLine | None]:
    """Take one line off the front of ``buf``: ``(consumed, line)``; ``(n, None)`` skips ``n`` bytes
    (an empty or overlong line); ``(0, None)`` needs more bytes. ``flush``: the line went quiet, so
    whatever is buffered without a suffix is a whole line."""
    cr = buf.find(b"\r")
    lf = buf.find(b"\n")
    ends = [i for i in (cr, lf) if i >= 0]
    if ends:
        end = min(ends)
        consumed = end + 1
        if buf[end] == CR and consumed < len(buf) and buf[consumed] == LF:
            consumed += 1
    elif flush and buf:
        end = consumed = len(buf)
    elif len(buf) > max_length:
        return len(buf), None
    else:
        return 0, None
    payload = bytes(buf[:end])
    if not payload or len(payload) > max_length:
        return consumed, None
    return consumed, _line(payload, aim_ids)


def _line(payload: bytes, aim_ids: bool) -> ScanLine | None:
    if aim_ids and payload[0] == AIM_FLAG and len(payload) >= AIM_LENGTH:
        symbology = payload[:AIM_LENGTH].decode("ascii", "replace")
        data = payload[AIM_LENGTH:]
        return ScanLine(data, symbology) if data else None  # an identifier alone is an empty line
    return ScanLine(payload)


def encode(text: str | bytes, *, symbology: str | None = None, suffix: bytes = b"\r") -> bytes:
    """The bytes a scanner sends for ``text`` (what the simulator writes)."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    prefix = symbology.encode("ascii") if symbology else b""
    return prefix + data + suffix
