"""``postkiosk diag scanner``: a barcode/QR scanner on the bench.

``listen`` prints every code the scanner reads, with its symbology (AIM identifier and name, when
the scanner sends one) and its length; ``trigger`` starts one scan from the host (Honeywell, Zebra
SSI, GM65 in trigger mode) and waits for its code. Both take the scanner's protocol and its port
(``--url``; for ``hid`` the input device path, e.g. ``/dev/input/by-id/usb-...-event-kbd``, which is
grabbed so the keys reach nobody else while the command runs).

What was read is shown, since a technician has to see it, except codes that look like personal
data: a payment code (18 to 24 digits starting 10-15 or 25-30) or an 18-character resident ID
number are shown as their last 4 characters only, in the table and in ``--json`` alike.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.markup import escape

from postkiosk.diag_common import JsonOpt, emit, emit_line, err_console, fail

app = typer.Typer(help="Barcode/QR scanners on the bench: listen to codes, or trigger one scan.",
                  no_args_is_help=True)

PROTOCOLS = ("serial-line", "honeywell", "zebra-ssi", "gm65", "hid")
TRIGGERED = ("honeywell", "zebra-ssi", "gm65")

ProtocolOpt = Annotated[str, typer.Option("--protocol", "-p", help=f"one of: {', '.join(PROTOCOLS)}")]
DeviceOpt = Annotated[str, typer.Option("--url", help="serial port or pyserial URL (/dev/ttyACM0, "
                                        "/dev/serial/by-id/..., socket://host:port); for hid the input "
                                        "device, /dev/input/by-id/...-event-kbd")]
BaudOpt = Annotated[int, typer.Option("--baudrate", help="line speed (ignored by USB-CDC scanners)")]
SuffixOpt = Annotated[str, typer.Option("--suffix", help="what ends a code: cr, lf, crlf or none "
                                        "(hid: anything but none means Enter)")]
AimOpt = Annotated[bool, typer.Option("--aim/--no-aim", help="the scanner sends AIM identifiers (]Q1, ]C0...)")]

#: §3.3: AIM identifier -> symbology; other modifiers fall back to the letter
AIM_NAMES = {
    "]E0": "EAN-13/UPC-A", "]E4": "EAN-8", "]E3": "EAN/UPC with add-on", "]C0": "Code 128",
    "]C1": "GS1-128", "]A0": "Code 39", "]I0": "ITF", "]I1": "ITF", "]F0": "Codabar", "]G0": "Code 93",
    "]Q1": "QR", "]d1": "Data Matrix", "]d2": "GS1 Data Matrix", "]L0": "PDF417", "]z0": "Aztec",
    "]e0": "GS1 DataBar",
}
AIM_LETTERS = {"E": "EAN/UPC", "C": "Code 128", "A": "Code 39", "I": "ITF", "F": "Codabar", "G": "Code 93",
               "Q": "QR", "d": "Data Matrix", "L": "PDF417", "z": "Aztec", "e": "GS1 DataBar",
               "X": "vendor-specific"}

PAYMENT_CODE = re.compile(r"^(?:1[0-5]|2[5-9]|30)\d{16,22}$")
ID_NUMBER = re.compile(r"^\d{17}[\dXx]$")


def symbology_name(aim: str | None) -> str | None:
    if not aim:
        return None
    return AIM_NAMES.get(aim) or AIM_LETTERS.get(aim[1:2])


def shown_text(text: str) -> tuple[str, bool]:
    """``(what to print, masked)``: payment codes and ID numbers keep only their last 4 characters."""
    if PAYMENT_CODE.match(text) or ID_NUMBER.match(text):
        return "*" * (len(text) - 4) + text[-4:], True
    return text, False


def record(code: Any, n: int) -> dict[str, Any]:
    text, masked = shown_text(code.text)
    return {"n": n, "text": text, "masked": masked, "length": len(code.text), "symbology": code.symbology,
            "symbology_name": symbology_name(code.symbology), "error": code.error, "at": code.at}


def human(rec: dict[str, Any]) -> str:
    kind = " ".join(x for x in (rec["symbology"], rec["symbology_name"]) if x) or "no symbology id"
    line = f"#{rec['n']}  {escape(kind)}  {rec['length']} chars  {escape(rec['text'])}"
    if rec["masked"]:
        line += "  [dim](masked: personal data)[/]"
    if rec["error"]:
        line += f"  [bold red]{escape(rec['error'])}: do not act on it[/]"
    return line


def build_scanner(protocol: str, url: str, baudrate: int, suffix: str, aim: bool) -> Any:
    """The ``hal`` scanner for the command line's options (not opened yet)."""
    from hal.scanner import code_scanner

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if protocol == "hid":
        return code_scanner("hid", path=url, suffix="none" if suffix == "none" else "enter", aim_ids=aim)
    if protocol == "zebra-ssi":
        return code_scanner("zebra-ssi", url=url, baudrate=baudrate, aim_ids=aim)
    return code_scanner(protocol, url=url, baudrate=baudrate, suffix=suffix, aim_ids=aim)


@dataclass
class _Listened:
    codes: int = 0
    timed_out: bool = False


async def _listen(scanner: Any, count: int, timeout: float | None, as_json: bool, seen: _Listened) -> None:
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    async with scanner:
        while not count or seen.codes < count:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                seen.timed_out = True
                return
            code = await scanner.read(timeout=remaining)
            if code is None:
                continue
            seen.codes += 1
            rec = record(code, seen.codes)
            emit_line({"event": "code", **rec}, as_json, human(rec))


@app.command("listen")
def listen(
    url: DeviceOpt,
    protocol: ProtocolOpt = "serial-line",
    baudrate: BaudOpt = 9600,
    suffix: SuffixOpt = "cr",
    aim: AimOpt = False,
    as_json: JsonOpt = False,
    count: Annotated[int, typer.Option("--count", min=0, help="stop after N codes (0: no limit)")] = 0,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0, help="stop after S seconds")] = None,
) -> None:
    """Print every code the scanner reads, until Ctrl-C, --count codes or --timeout seconds.
    Exits 1 when --timeout ends the wait before --count codes came."""
    from hal.errors import HalError

    try:
        scanner = build_scanner(protocol, url, baudrate, suffix, aim)
    except (ValueError, HalError) as err:
        fail(str(err), as_json)
    if not as_json:
        err_console.print(f"listening to {escape(url)} ({protocol}); Ctrl-C stops", highlight=False)
    seen = _Listened()
    try:
        asyncio.run(_listen(scanner, count, timeout, as_json, seen))
    except KeyboardInterrupt:
        pass
    except HalError as err:
        fail(f"scanner failed after {seen.codes} codes: {err}", as_json)
    emit_line({"event": "end", "codes": seen.codes}, as_json, f"{seen.codes} codes read")
    if count and seen.codes < count:
        raise typer.Exit(1)


async def _trigger(scanner: Any, timeout: float) -> Any:
    async with scanner:
        await scanner.trigger(True)
        code = await scanner.read(timeout=timeout)
        if code is None:
            try:
                await scanner.trigger(False)
            except Exception:  # noqa: BLE001  (best effort: the scan times out on its own anyway)
                pass
        return code


@app.command("trigger")
def trigger(
    url: DeviceOpt,
    protocol: ProtocolOpt = "honeywell",
    baudrate: BaudOpt = 9600,
    suffix: SuffixOpt = "cr",
    aim: AimOpt = False,
    as_json: JsonOpt = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="seconds to wait for the code")] = 5.0,
) -> None:
    """Start one scan from the host and print the code it reads (exit 1 when none comes in time)."""
    from hal.errors import DeviceUnavailable, HalError

    if protocol not in TRIGGERED:
        fail(f"a {protocol} scanner cannot be triggered by the host; use one of: {', '.join(TRIGGERED)}", as_json)
    try:
        scanner = build_scanner(protocol, url, baudrate, suffix, aim)
        code = asyncio.run(_trigger(scanner, timeout))
    except DeviceUnavailable as err:
        fail(f"cannot trigger this scanner: {err}", as_json)
    except (ValueError, HalError) as err:
        fail(str(err), as_json)
    if code is None:
        fail(f"no code read within {timeout:g} s of the trigger", as_json, code=1)
    rec = record(code, 1)
    emit(rec, as_json, human)
