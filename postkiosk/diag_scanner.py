"""``postkiosk diag scanner``: a barcode/QR scanner on the bench.

``listen`` prints every code the scanner reads, with its symbology (AIM identifier and name, when
the scanner sends one), its length in bytes as received and what the station takes it for (``kind``,
from ``hal.codes.classify``); ``trigger`` starts one scan from the host (Honeywell, Zebra SSI, GM65 in
trigger mode) and waits for its code. Both take the scanner's protocol and its port (``--url``; for
``hid`` the input device path, e.g. ``/dev/input/by-id/usb-...-event-kbd``, which is grabbed so the
keys reach nobody else while the command runs), before the command (``diag lock``'s form) or after it::

    postkiosk diag scanner --url /dev/ttyACM0 listen
    postkiosk diag scanner --protocol honeywell --url /dev/ttyUSB0 trigger

What was read is shown as read, since a technician has to see it (waybills, S10 item numbers,
anything the station does not know), except what the kiosk itself masks: pickup codes and tokens,
payment codes and resident ID numbers are shown as their mask (``Read.masked``), in the table and in
``--json`` alike. One rule, :func:`shown_code`, serves ``diag scan`` too.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from hal.codes import PaymentCode, PickupCode, PickupToken, ResidentIdNumber, classify
from postkiosk.diag_common import JsonOpt, emit, emit_line, err_console, fail, pick_option

app = typer.Typer(help="Barcode/QR scanners on the bench: listen to codes, or trigger one scan. Give the "
                  "scanner with --protocol and --url before the command (or after it).", no_args_is_help=True)

PROTOCOLS = ("serial-line", "honeywell", "zebra-ssi", "gm65", "hid")
TRIGGERED = ("honeywell", "zebra-ssi", "gm65")

ProtocolOpt = Annotated[Optional[str], typer.Option(
    "--protocol", "-p", help=f"one of: {', '.join(PROTOCOLS)} [default: serial-line for listen, honeywell for "
    "trigger]", show_default=False)]
DeviceOpt = Annotated[Optional[str], typer.Option(
    "--url", help="serial port or pyserial URL (/dev/ttyACM0, /dev/serial/by-id/..., socket://host:port); for "
    "hid the input device, /dev/input/by-id/...-event-kbd (required)", show_default=False)]
BaudOpt = Annotated[Optional[int], typer.Option(
    "--baudrate", help="line speed (ignored by USB-CDC scanners) [default: 9600]", show_default=False)]
SuffixOpt = Annotated[Optional[str], typer.Option(
    "--suffix", help="what ends a code: cr, lf, crlf or none (hid: anything but none means Enter) [default: cr]",
    show_default=False)]
AimOpt = Annotated[Optional[bool], typer.Option(
    "--aim/--no-aim", help="the scanner sends AIM identifiers (]Q1, ]C0...) [default: no-aim]",
    show_default=False)]

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

#: what the kiosk masks (``hal.codes``); everything else is shown as read
SECRET_READS = (PickupCode, PickupToken, PaymentCode, ResidentIdNumber)
#: the escape ``backslashreplace`` writes for one undecodable byte
_BYTE_ESCAPE = re.compile(r"\\x[0-9a-f]{2}")


@dataclass(frozen=True)
class ScannerOptions:
    """The scanner as given before the command (the group's options)."""

    url: str | None = None
    protocol: str | None = None
    baudrate: int | None = None
    suffix: str | None = None
    aim: bool | None = None

    def resolve(self, as_json: bool, command: str, default_protocol: str, url: str | None, protocol: str | None,
                baudrate: int | None, suffix: str | None, aim: bool | None) -> tuple[str, str, int, str, bool]:
        """The command's scanner: options given after the command, else before it; --url is required."""
        url = pick_option("--url", self.url, url, None, as_json)
        protocol = pick_option("--protocol", self.protocol, protocol, default_protocol, as_json)
        baudrate = pick_option("--baudrate", self.baudrate, baudrate, 9600, as_json)
        suffix = pick_option("--suffix", self.suffix, suffix, "cr", as_json)
        aim = pick_option("--aim/--no-aim", self.aim, aim, False, as_json)
        if not url:
            fail(f"give --url, e.g. 'postkiosk diag scanner --url /dev/ttyACM0 {command}'", as_json)
        return url, protocol, baudrate, suffix, aim


@app.callback()
def _group(ctx: typer.Context, url: DeviceOpt = None, protocol: ProtocolOpt = None, baudrate: BaudOpt = None,
           suffix: SuffixOpt = None, aim: AimOpt = None) -> None:
    """Barcode/QR scanners on the bench: the scanner here, the command after it."""
    ctx.obj = ScannerOptions(url, protocol, baudrate, suffix, aim)


def _options(ctx: typer.Context) -> ScannerOptions:
    return ctx.find_object(ScannerOptions) or ScannerOptions()


def symbology_name(aim: str | None) -> str | None:
    if not aim:
        return None
    return AIM_NAMES.get(aim) or AIM_LETTERS.get(aim[1:2])


def shown_code(text: str, symbology: str | None = None, error: str | None = None) -> dict[str, Any]:
    """What a diag command prints for a read: ``{"text", "masked", "kind"}``, by the kiosk's own rule
    (``hal.codes.classify``). Pickup codes and tokens, payment codes and ID numbers become their mask;
    anything else is shown as read. ``kind`` is the classified kind ("pickup_code", "waybill", ...). A
    read with an ``error`` (undecodable bytes) is "unknown", as the kiosk takes it, but is still masked
    when what is around its bad bytes is a secret (a token or payment code after a stray byte): each
    bad byte is read as a space, which the classifier ignores inside a text."""
    if error is None:
        read = classify(text, symbology)
        kind = read.kind
    else:
        read = classify(_BYTE_ESCAPE.sub(" ", text), symbology)
        kind = "unknown"
    if isinstance(read, SECRET_READS):
        return {"text": read.masked, "masked": True, "kind": kind}
    return {"text": text, "masked": False, "kind": kind}


def byte_length(code: Any) -> int:
    """The bytes the scanner sent for ``code`` (a keyboard wedge sends keys: its text's UTF-8 length)."""
    raw = getattr(code, "raw_length", None)
    return raw if raw is not None else len(code.text.encode("utf-8"))


def record(code: Any, n: int) -> dict[str, Any]:
    return {"n": n, **shown_code(code.text, code.symbology, code.error), "length": byte_length(code),
            "symbology": code.symbology, "symbology_name": symbology_name(code.symbology), "error": code.error,
            "at": code.at}


def human(rec: dict[str, Any]) -> str:
    kind = " ".join(x for x in (rec["symbology"], rec["symbology_name"]) if x) or "no symbology id"
    line = f"#{rec['n']}  {escape(kind)}  {rec['length']} bytes  {rec['kind']}  {escape(rec['text'])}"
    if rec["masked"]:
        line += "  [dim](masked)[/]"
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
    ctx: typer.Context,
    url: DeviceOpt = None,
    protocol: ProtocolOpt = None,
    baudrate: BaudOpt = None,
    suffix: SuffixOpt = None,
    aim: AimOpt = None,
    as_json: JsonOpt = False,
    count: Annotated[int, typer.Option("--count", min=0, help="stop after N codes (0: no limit)")] = 0,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0, help="stop after S seconds")] = None,
) -> None:
    """Print every code the scanner reads, until Ctrl-C, --count codes or --timeout seconds.
    Exits 1 when --timeout ends the wait before --count codes came."""
    from hal.errors import HalError

    url, protocol, baudrate, suffix, aim = _options(ctx).resolve(as_json, "listen", "serial-line", url, protocol,
                                                                 baudrate, suffix, aim)
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
    ctx: typer.Context,
    url: DeviceOpt = None,
    protocol: ProtocolOpt = None,
    baudrate: BaudOpt = None,
    suffix: SuffixOpt = None,
    aim: AimOpt = None,
    as_json: JsonOpt = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="seconds to wait for the code")] = 5.0,
) -> None:
    """Start one scan from the host and print the code it reads (exit 1 when none comes in time)."""
    from hal.errors import DeviceUnavailable, HalError

    url, protocol, baudrate, suffix, aim = _options(ctx).resolve(as_json, "trigger", "honeywell", url, protocol,
                                                                 baudrate, suffix, aim)
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
