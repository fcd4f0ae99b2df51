"""Honeywell serial commands: host trigger and menu commands (hardware-protocols.md §3.2).

Decoded codes do not come through here: in serial or USB-CDC mode the scanner sends each code as a
plain line (``firmware_bridge.scanner_lines``). This module is what the host sends and what the
scanner answers to it.

Host to scanner::

    trigger on    16 54 0D           SYN "T" CR   (serial/manual trigger mode only)
    trigger off   16 55 0D           SYN "U" CR
    menu command  16 4D 0D  TAG SUBTAG DATA  STORAGE
                  SYN "M" CR  3 chars 3 chars  0..n   "!" volatile RAM | "." non-volatile
                  e.g. 16 4D 0D "232BAD9."  sets 115200 baud; DATA "?" asks the current value,
                  "^" the default, "*" the range

Scanner to host, the menu reply: the command echoed with a status character, ``ACK (06)`` done,
``ENQ (05)`` unknown tag or subtag, ``NAK (15)`` data out of range (N431X manual)::

    [16 4D 0D]  TAG SUBTAG DATA  STATUS  STORAGE      "TRGSTO5000" 06 "!"   (status before storage)
    [16 4D 0D]  TAG SUBTAG DATA  STORAGE  STATUS      "TRGSTO5000" "!" 06   (status at the end)

Where the status character sits is [UNVERIFIED] (the spec could not settle it), so
:func:`decode_menu_reply` accepts both layouts above, and a reply with no storage character at all.
Whether the ``SYN M CR`` prefix is echoed is not known either: it is skipped when present.

Resynchronisation rules of :func:`decode_menu_reply`:

* A reply ends at its first status character (plus the storage character right after it, if any).
  Its start is just after the last CR, LF or SYN before that status character; bytes before the
  start (an echoed ``SYN M CR``, the tail of a code line, noise) are skipped as ``(n, None)``.
* A status character followed by nothing yet needs one more byte (the storage character may
  follow); ``flush=True`` (the line went quiet) takes the reply without it.
* A reply to several ``;``-separated settings with a status after each comes back as one
  :class:`MenuReply` per setting (each call takes one; a leading ``;`` or ``,`` is dropped).
  With a single status at the end, the whole body is one reply whose ``data`` holds the rest.
* No status character within :data:`MAX_REPLY` bytes: the bytes are dropped.
* Replies that span several lines (``REVINF`` revision reports) are not parsed here.

:func:`decode_command` (host to scanner, what the simulator parses) skips everything up to the next
SYN; a SYN that starts none of the three commands is dropped.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

SYN = 0x16
CR = 0x0D
LF = 0x0A
TRIGGER_ON = b"\x16T\r"
TRIGGER_OFF = b"\x16U\r"
MENU_PREFIX = b"\x16M\r"
MAX_REPLY = 512  # bytes without a status character before the buffer is given up on
MAX_COMMAND = 512

#: Read Time-Out in serial trigger mode, milliseconds 0..300000 (Xenon/Granit default 30000)
#: [UNVERIFIED: tag from memory of the Xenon user guide; check with the model's manual].
READ_TIMEOUT_SETTING = "TRGSTO"
READ_TIMEOUT_MAX_MS = 300_000

_SETTING = re.compile(r"^[0-9A-Z]{6}$")
_DATA_FORBIDDEN = set("!.;") | {chr(c) for c in range(0x20)} | {"\x7f"}


class Storage(str, enum.Enum):
    """Where a menu setting goes: RAM until power-off, or flash."""

    VOLATILE = "!"
    PERMANENT = "."


class MenuStatus(enum.IntEnum):
    ACK = 0x06  # done
    ENQ = 0x05  # unknown tag or subtag
    NAK = 0x15  # data out of range

    @property
    def meaning(self) -> str:
        return {MenuStatus.ACK: "done", MenuStatus.ENQ: "unknown tag or subtag",
                MenuStatus.NAK: "data out of range"}[self]


_STATUS_BYTES = frozenset(int(s) for s in MenuStatus)
_STORAGE_BYTES = frozenset(ord(s.value) for s in Storage)


@dataclass(frozen=True)
class Trigger:
    """A host trigger command: ``on`` starts a scan, off stops it."""

    on: bool

    def encode(self) -> bytes:
        return TRIGGER_ON if self.on else TRIGGER_OFF


@dataclass(frozen=True)
class MenuCommand:
    """``setting`` is tag + subtag ("TRGSTO"), ``data`` the value or a query character."""

    setting: str
    data: str = ""
    storage: Storage = Storage.VOLATILE

    def encode(self) -> bytes:
        return menu_command(self.setting, self.data, permanent=self.storage is Storage.PERMANENT)


@dataclass(frozen=True)
class MenuReply:
    """The scanner's answer to a menu command. ``storage`` is None when the reply carried none."""

    setting: str
    data: str
    status: MenuStatus
    storage: Storage | None = None

    @property
    def ok(self) -> bool:
        return self.status is MenuStatus.ACK


def menu_command(setting: str, data: str | int = "", *, permanent: bool = False) -> bytes:
    """``SYN M CR`` + ``setting`` (tag and subtag, 6 characters such as "TRGSTO" or "232BAD") +
    ``data`` + ``!`` (volatile) or ``.`` (``permanent``). Raises ``ValueError`` for a malformed
    setting or data that would end the command early."""
    data = str(data)
    if not _SETTING.match(setting):
        raise ValueError(f"a menu setting is 6 characters 0-9/A-Z (tag + subtag), not {setting!r}")
    if not data.isascii() or _DATA_FORBIDDEN & set(data):
        raise ValueError(f"menu data must be printable ASCII without '!', '.' or ';': {data!r}")
    storage = Storage.PERMANENT if permanent else Storage.VOLATILE
    return MENU_PREFIX + (setting + data + storage.value).encode("ascii")


def read_timeout_command(seconds: float, *, permanent: bool = False) -> bytes:
    """The menu command setting the Read Time-Out (serial trigger mode) to ``seconds``."""
    ms = round(seconds * 1000)
    if not 0 <= ms <= READ_TIMEOUT_MAX_MS:
        raise ValueError(f"read time-out must be 0..{READ_TIMEOUT_MAX_MS / 1000:g} s, not {seconds!r}")
    return menu_command(READ_TIMEOUT_SETTING, ms, permanent=permanent)


def decode_command(buf: bytes | bytearray) -> tuple[int, Trigger | MenuCommand | None]:
    """Take one host command off the front of ``buf`` (the simulator's side): ``(consumed, command)``,
    ``(n, None)`` skips ``n`` bytes, ``(0, None)`` needs more bytes."""
    if not buf:
        return 0, None
    if buf[0] != SYN:
        syn = buf.find(SYN)
        return (len(buf) if syn < 0 else syn), None
    if len(buf) < 3:
        return 0, None
    if buf[2] != CR:
        return 1, None
    kind = buf[1]
    if kind in (ord("T"), ord("U")):
        return 3, Trigger(kind == ord("T"))
    if kind != ord("M"):
        return 1, None
    ends = [i for i in (buf.find(b"!", 3), buf.find(b".", 3)) if i >= 0]
    if not ends:
        return (1, None) if len(buf) > MAX_COMMAND else (0, None)
    end = min(ends)
    body = bytes(buf[3:end]).decode("ascii", "replace")
    return end + 1, MenuCommand(body[:6], body[6:], Storage(chr(buf[end])))


def encode_menu_reply(reply: MenuReply, *, status_at_end: bool = False, echo_prefix: bool = False) -> bytes:
    """The bytes a scanner answers with (what the simulator writes): status before the storage
    character, or at the very end with ``status_at_end``; ``echo_prefix`` repeats ``SYN M CR``."""
    body = (reply.setting + reply.data).encode("ascii", "replace")
    storage = reply.storage.value.encode("ascii") if reply.storage is not None else b""
    status = bytes([reply.status])
    tail = storage + status if status_at_end else status + storage
    return (MENU_PREFIX if echo_prefix else b"") + body + tail


def decode_menu_reply(buf: bytes | bytearray, *, flush: bool = False) -> tuple[int, MenuReply | None]:
    """Take one menu reply off the front of ``buf``: ``(consumed, reply)``; ``(n, None)`` skips
    ``n`` bytes; ``(0, None)`` needs more. ``flush``: nothing more is coming, so a status
    character at the very end completes the reply without a storage character."""
    status_at = next((i for i, b in enumerate(buf[: MAX_REPLY + 2]) if b in _STATUS_BYTES), -1)
    if status_at < 0:
        return (len(buf), None) if len(buf) > MAX_REPLY else (0, None)
    start = max(buf.rfind(b"\r", 0, status_at), buf.rfind(b"\n", 0, status_at),
                buf.rfind(bytes([SYN]), 0, status_at)) + 1
    if start > 0:
        return start, None  # an echoed SYN M CR, the end of a code line, noise
    body = bytes(buf[:status_at])
    status = MenuStatus(buf[status_at])
    consumed = status_at + 1
    storage: Storage | None = None
    if body and body[-1] in _STORAGE_BYTES:
        storage = Storage(chr(body[-1]))  # storage, then status at the end
        body = body[:-1]
    elif consumed < len(buf):
        if buf[consumed] in _STORAGE_BYTES:
            storage = Storage(chr(buf[consumed]))
            consumed += 1
    elif not flush:
        return 0, None  # the storage character may still come
    text = body.decode("ascii", "replace").lstrip(";,")
    return consumed, MenuReply(text[:6], text[6:], status, storage)
